//! The host's layering rule, checked on the source text: `cli` may use everything below it,
//! nothing below imports `cli`, and the top-level modules import each other without a circle
//! (see the crate docs of `lib.rs` and the "Host map" in docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`cli/init.rs` -> `cli`, `engine.rs` -> `engine`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments (line comments and doc comments), so that docs naming
/// a module do not count as imports.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules a file's code names through `crate::X` (including each first name in
/// a `crate::{X, Y::z}` group).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // Not part of a longer name such as `keystamp_crate::`.
        let preceded = rest[..i].chars().next_back().is_some_and(is_ident);
        rest = &rest[i + "crate::".len()..];
        if preceded {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let mut depth = 0usize;
            let mut start = 0usize;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        refs.insert(first_ident(&group[start..k]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.insert(first_ident(&group[start..k]));
                        start = k + 1;
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(first_ident(rest));
        }
    }
    refs.remove("");
    refs
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| is_ident(*c))
        .collect()
}

/// Module -> the other top-level modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "found only {} source files", files.len());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = top_module(&src, f);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        let deps = graph.entry(module.clone()).or_default();
        for r in crate_refs(&code(&text)) {
            if r != module {
                deps.insert(r);
            }
        }
    }
    graph
}

#[test]
fn the_parser_sees_plain_grouped_and_nested_paths() {
    let refs = crate_refs(
        "use crate::engine::Step;\nuse crate::{pki::{ca, issue}, registry};\nlet x = crate::link::open();\nkeystamp_crate::no",
    );
    let want: BTreeSet<String> = ["engine", "pki", "registry", "link"]
        .map(String::from)
        .into();
    assert_eq!(refs, want);
    assert!(
        code("// use crate::cli;\n//! crate::cli")
            .find("crate::")
            .is_none()
    );
}

#[test]
fn nothing_below_the_cli_imports_it() {
    let offenders: Vec<_> = graph()
        .into_iter()
        .filter(|(m, deps)| m != "cli" && deps.contains("cli"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        offenders.is_empty(),
        "modules importing crate::cli: {offenders:?}"
    );
}

#[test]
fn ops_is_below_the_cli_and_above_the_domain() {
    let g = graph();
    assert!(g.contains_key("cli") && g.contains_key("ops") && g.contains_key("pki"));
    for (m, deps) in &g {
        if m != "cli" {
            assert!(!deps.contains("ops") || m == "ops", "{m} imports ops");
        }
    }
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let g = graph();
    // Depth-first search with colours; report the circle found.
    fn visit<'a>(
        m: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if done.contains(m) {
            return None;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut circle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            circle.push(m.to_string());
            return Some(circle);
        }
        path.push(m);
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, g, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        let mut path = Vec::new();
        if let Some(circle) = visit(m, &g, &mut done, &mut path) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}
