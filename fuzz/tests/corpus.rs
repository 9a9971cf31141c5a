//! Replays the checked-in corpus of every fuzz target on stable: each file of
//! `corpus/<target>/` goes through the target's body once. Run by `cargo xtask ci`.

use std::{fs, path::Path};

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, body) in ave_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the corpus of `{name}` ({}): {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "the corpus of `{name}` is empty");
        for file in &files {
            let data = fs::read(file).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "`{name}` fails on {}", file.display());
        }
        println!("{name}: {} inputs", files.len());
    }
}

#[test]
fn every_target_has_a_binary_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in ave_fuzz::TARGETS {
        assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "{name}");
        assert!(root.join("corpus").join(name).is_dir(), "{name}");
    }
}
