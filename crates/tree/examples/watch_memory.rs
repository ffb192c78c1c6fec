//! Measures the memory a watch costs in the registry, beyond the path
//! strings themselves, with a counting allocator.
//! Run: cargo run --release -p paddock-tree --example watch_memory

use paddock_tree::watch::{WatchRegistry, DATA};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

fn measure(label: &str, paths: usize, watchers_per_path: usize) {
    let names: Vec<String> = (0..paths)
        .map(|i| format!("/app/jobs/job-{i:010}"))
        .collect();
    let path_bytes: usize = names.iter().map(String::len).sum();
    let before = counting::live_bytes();
    let mut r = WatchRegistry::default();
    for w in 0..watchers_per_path {
        for p in &names {
            r.add(w as u64, p, DATA);
        }
    }
    let used = counting::live_bytes() - before;
    let watches = r.len();
    println!(
        "{label}: {watches} watches on {paths} paths: {used} bytes, {:.1} B/watch beyond path strings ({path_bytes} B of paths)",
        (used - path_bytes) as f64 / watches as f64
    );
    drop(r);
}

fn main() {
    measure("one watcher, many paths", 1_000_000, 1);
    measure("many watchers, few paths", 1_000, 1_000);
    measure("mixed", 100_000, 10);
}
