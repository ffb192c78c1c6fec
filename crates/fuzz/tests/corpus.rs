//! Replays the fuzz corpus kept in `fuzz/corpus/<target>/` (the inputs
//! libFuzzer found interesting, and any that once failed) through every
//! target, so what a campaign found stays fixed.

#[test]
fn every_kept_input_runs_clean_through_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut total = 0;
    for (name, target) in paddock_fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: no corpus");
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            target(&data);
        }
        eprintln!("{name}: {} inputs", inputs.len());
        total += inputs.len();
    }
    assert!(total > 0);
}
