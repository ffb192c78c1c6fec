//! The server crate's modules form a DAG (ARCHITECTURE.md, "The server's
//! modules"): a module that uses another is never used by it, directly or
//! through others. Read from the sources: every `crate::m` outside the
//! test module names an edge to `m`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module and the modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            let text = std::fs::read_to_string(&path).expect("source");
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            sources.insert(name.to_owned(), code);
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(name, code)| {
            let used = named_modules(code)
                .into_iter()
                .filter(|m| m != name && modules.contains(m))
                .collect();
            (name.clone(), used)
        })
        .collect()
}

/// The first path segment after each `crate::`, and inside
/// `crate::{a, b::c}` each item's first segment.
fn named_modules(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(|item| ident(item.trim())));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out
}

/// A cycle through `from`, if there is one: the modules in order.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn module_graph_is_a_dag() {
    let graph = graph();
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    assert!(graph["server"].contains("conn"), "edges were found");
    for module in graph.keys() {
        if let Some(path) = cycle(&graph, module) {
            panic!(
                "the modules import each other in a circle: {} -> {module}",
                path.join(" -> ")
            );
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    let looped = edges(&[("a", "b"), ("b", "c"), ("c", "a")]);
    assert_eq!(
        cycle(&looped, "a"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(cycle(&edges(&[("a", "b"), ("b", "c")]), "a"), None);
    assert_eq!(
        named_modules("use crate::{outbox::Outbox, shared};\nlet x = crate::pipeline::run;"),
        ["outbox", "pipeline", "shared"].map(String::from).into()
    );
}
