//! No import circle between the modules of `src/`: every `crate::…` path outside comments and
//! test modules is an edge from its file's module to the module that defines the item (names
//! re-exported by `lib.rs` are followed to their module), and the graph must be acyclic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn src_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The file's code without `//` comments and without the `#[cfg(test)]` module at its end.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// First path segments used after `crate::`, including those inside `use crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue; // e.g. `keystamp_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                let first: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                if !first.is_empty() {
                    refs.insert(first);
                }
            }
        } else {
            let first: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            refs.insert(first);
        }
    }
    refs
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `pub use module::{A, B}` lines of lib.rs: re-exported name → defining module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for stmt in code.split(';') {
        let s = stmt.trim();
        let Some(path) = s
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("#["))
            .collect::<Vec<_>>()
            .join(" ")
            .strip_prefix("pub use ")
            .map(str::to_string)
        else {
            continue;
        };
        let module: String = path.chars().take_while(|&c| is_ident(c)).collect();
        let names = match path.find('{') {
            Some(i) => path[i + 1..path.rfind('}').unwrap()].to_string(),
            None => path.rsplit("::").next().unwrap().to_string(),
        };
        for n in names.split(',') {
            let n = n.trim();
            if !n.is_empty() {
                map.insert(n.to_string(), module.clone());
            }
        }
    }
    map
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = src_dir();
    let lib = std::fs::read_to_string(dir.join("lib.rs")).unwrap();
    let exports = reexports(&lib);
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let name = if name == "lib" {
                "crate".to_string()
            } else {
                name
            };
            modules.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut graph = BTreeMap::new();
    for (name, text) in &modules {
        let mut edges = BTreeSet::new();
        // lib.rs's own `pub use` lines are re-exports, not uses.
        let code: String = if name == "crate" {
            code_of(text)
                .split(';')
                .filter(|s| !s.trim_start().starts_with("pub use"))
                .collect::<Vec<_>>()
                .join(";")
        } else {
            code_of(text)
        };
        for r in crate_refs(&code) {
            let target = if modules.contains_key(&r) {
                r
            } else if let Some(m) = exports.get(&r) {
                m.clone()
            } else {
                "crate".to_string() // an item defined in lib.rs itself
            };
            if &target != name {
                edges.insert(target);
            }
        }
        graph.insert(name.clone(), edges);
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let i = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_import_circle_between_modules() {
    let graph = module_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}\ngraph: {graph:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_a_circle() {
    // The checker itself: a -> b -> c -> a is found, a tree is not.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.get_mut("c").unwrap().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap().len(), 4);
    let refs =
        crate_refs("use crate::{def::{A, B}, Error};\nlet x = crate::der::f();\nmy_crate::x;");
    assert_eq!(refs, ["Error", "def", "der"].map(String::from).into());
}

#[test]
fn the_graph_sees_todays_edges() {
    // Sanity: the parser finds real edges (an empty graph would pass the circle test).
    let g = module_graph();
    assert!(g["blob"].contains("def"), "{g:#?}");
    assert!(g["rebuild"].contains("cert"), "{g:#?}");
}
