//! Every seed input of every fuzz target (`fuzz/corpus/<target>/`) and every input a fuzzer
//! found (`fuzz/regressions/<target>/`) through the target's check: a crash once found stays
//! a test.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_passes_its_target_check() {
    for (target, check) in bourse_fuzz_checks::TARGETS {
        let seeds = inputs(&root().join("fuzz/corpus").join(target));
        assert!(!seeds.is_empty(), "{target} has no seed corpus");
        let regressions = inputs(&root().join("fuzz/regressions").join(target));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap_or_default();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} fails its check",
                file.display()
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for (target, _) in bourse_fuzz_checks::TARGETS {
        let file = root()
            .join("fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.contains(&format!("bourse_fuzz_checks::{target}")),
            "{} does not run bourse_fuzz_checks::{target}",
            file.display()
        );
    }
}
