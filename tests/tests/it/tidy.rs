//! House rules checked on the sources themselves (as rust-analyzer's `tidy` does):
//!
//! - **Crates by role, arrows one way.** Each crate's `[dependencies]` on the workspace's
//!   crates go to crates of a lower layer only ([`LAYERS`]); the crates of [`TESTING`] may
//!   use everything.
//! - **No module cycles.** Within each crate, the graph of `crate::module` references between
//!   its top-level modules has no cycle.
//! - **No comment points at the tracker.** No comment names an issue or task number, or
//!   waits for something "until X lands": the code says what it is now.
//! - **Short files.** No production source file is over [`FILE_LINES_MAX`] lines, outside
//!   [`LONG_FILES`], each with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each crate (by directory): a crate depends only on crates of lower layers.
const LAYERS: &[(&str, u32)] = &[
    ("engine", 0),
    ("journal", 0),
    ("feed", 0),
    ("snapshots", 1),
    ("marketdata", 1),
    ("store", 2),
    ("pipeline", 3),
    ("history", 4),
    ("cluster", 4),
    ("market-service", 5),
    ("gateway", 6),
    ("server", 7),
    ("bourse", 8),
];

/// Crates that test the others and may use any of them: the benchmarks, the cross-crate
/// tests, the checks of the fuzz targets (which reach every parser and use the tests'
/// workload) and the deterministic simulation. They have no layer and no production files.
const TESTING: &[&str] = &["benches", "tests", "fuzz-checks", "sim"];

/// The longest a production source file may be.
const FILE_LINES_MAX: usize = 800;

/// Production files allowed over [`FILE_LINES_MAX`], with the reason.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "engine/src/engine.rs",
        "dispatch and every rule of the state machine in one place; to be split by command family",
    ),
    (
        "engine/src/image.rs",
        "the snapshot image and its validation, kept beside each other",
    ),
    (
        "journal/src/journal.rs",
        "the single writer, its recovery and its commit protocol",
    ),
    (
        "pipeline/src/run.rs",
        "the engine thread's loop in both topologies",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("target") && !path.ends_with("node_modules") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace's crates: directory → package name.
fn members() -> BTreeMap<String, String> {
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|m| {
            let dir = m.as_str().unwrap().to_string();
            let package: toml::Table =
                std::fs::read_to_string(root().join(&dir).join("Cargo.toml"))
                    .unwrap()
                    .parse()
                    .unwrap();
            let name = package["package"]["name"].as_str().unwrap().to_string();
            (dir, name)
        })
        .collect()
}

#[test]
fn crate_dependencies_point_down_the_layers() {
    let members = members();
    let layer_of_dir: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let dir_of_name: BTreeMap<&str, &str> = members
        .iter()
        .map(|(d, n)| (n.as_str(), d.as_str()))
        .collect();
    let mut wrong = Vec::new();
    for dir in members.keys() {
        if TESTING.contains(&dir.as_str()) {
            continue;
        }
        let layer = *layer_of_dir
            .get(dir.as_str())
            .unwrap_or_else(|| panic!("crate {dir} has no layer in LAYERS"));
        let package: toml::Table = std::fs::read_to_string(root().join(dir).join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let Some(deps) = package.get("dependencies").and_then(|d| d.as_table()) else {
            continue;
        };
        for name in deps.keys() {
            let Some(dep_dir) = dir_of_name.get(name.as_str()) else {
                continue;
            };
            let dep_layer = layer_of_dir[dep_dir];
            if dep_layer >= layer {
                wrong.push(format!(
                    "{dir} (layer {layer}) depends on {dep_dir} (layer {dep_layer})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers:\n{}",
        wrong.join("\n")
    );
}

/// The top-level module a source file belongs to (`None`: the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The code of a line, without its `//` comment (good enough for `crate::` paths).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// The modules a piece of code names after `crate::`, including inside `crate::{a, b::c}`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `bourse_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(head_of(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(head_of(&item));
        } else {
            out.insert(head_of(rest));
        }
    }
    out.remove("");
    out
}

fn head_of(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle in `graph`, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|n| n == next).unwrap();
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut path = Vec::new();
            if let Some(cycle) = visit(node, graph, &mut state, &mut path) {
                return Some(cycle);
            }
        }
    }
    None
}

/// The graph of one crate's top-level modules.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text.lines().map(code_of).collect::<Vec<_>>().join("\n");
        let edges = graph.entry(from.clone()).or_default();
        for to in crate_references(&code) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

#[test]
fn no_crate_has_a_cycle_between_its_modules() {
    let mut cycles = Vec::new();
    for dir in members().keys() {
        let src = root().join(dir).join("src");
        let mut graph = module_graph(&src);
        // Every cycle, one at a time: report it, cut its first edge, look again.
        while let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{dir}: {}", cycle.join(" -> ")));
            if let Some(edges) = graph.get_mut(&cycle[0]) {
                edges.remove(&cycle[1]);
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_reads_grouped_imports() {
    let refs = crate_references("use crate::{a, b::{C, D}, c::e};\nlet x = crate::d::f();");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert!(crate_references("bourse_crate::x").is_empty());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// Whether a comment points at the tracker or at a future change.
fn points_at_the_tracker(comment: &str) -> bool {
    let lower = comment.to_ascii_lowercase();
    let numbered = |word: &str| {
        lower.match_indices(word).any(|(at, _)| {
            let starts_a_word = !lower[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
            let after = &lower[at + word.len()..];
            let after = after.strip_prefix(' ').unwrap_or(after);
            let after = after.strip_prefix('#').unwrap_or(after);
            starts_a_word && after.starts_with(|c: char| c.is_ascii_digit())
        })
    };
    let waits = lower.match_indices("until ").any(|(at, _)| {
        let clause = lower[at..].split(['.', ';', ',', ')']).next().unwrap_or("");
        clause.contains(" lands")
    });
    numbered("issue") || numbered("task") || waits
}

#[test]
fn no_comment_points_at_the_tracker() {
    let mut found = Vec::new();
    for dir in members().keys() {
        for file in rust_files(&root().join(dir)) {
            if file.ends_with("tests/it/tidy.rs") {
                continue; // its own examples
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if let Some(at) = line.find("//")
                    && points_at_the_tracker(&line[at..])
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "comments that point at the tracker:\n{}",
        found.join("\n")
    );
    assert!(points_at_the_tracker("// the catalogue (issue 7)"));
    assert!(points_at_the_tracker(
        "// Until the catalogue lands, add USD"
    ));
    assert!(!points_at_the_tracker(
        "/// Blocks until the answer arrives"
    ));
    assert!(points_at_the_tracker("/// see task #12"));
    assert!(!points_at_the_tracker(
        "// an issue with the tissue 7 times"
    ));
}

#[test]
fn production_files_are_short() {
    let mut long = Vec::new();
    let allowed: BTreeMap<&str, &str> = LONG_FILES.iter().copied().collect();
    for dir in members().keys() {
        if TESTING.contains(&dir.as_str()) {
            continue;
        }
        let src = root().join(dir).join("src");
        for file in rust_files(&src) {
            let rel = file
                .strip_prefix(root())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests at the end of a file do not count.
            let production = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or("");
            let n_lines = production.lines().count();
            if n_lines > FILE_LINES_MAX && !allowed.contains_key(rel.as_str()) {
                long.push(format!("{rel}: {n_lines} lines"));
            }
            if n_lines <= FILE_LINES_MAX && allowed.contains_key(rel.as_str()) {
                long.push(format!(
                    "{rel} is short now ({n_lines} lines): remove it from LONG_FILES"
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {FILE_LINES_MAX} lines:\n{}",
        long.join("\n")
    );
}
