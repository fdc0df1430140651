//! Keeps a crate's modules layered: no module may reach, through its
//! imports, back to itself. It reads the sources (outside their
//! `#[cfg(test)]` parts) and follows every `crate::…`, `super::…` and
//! child-module path to the module that defines it. Both crates of the
//! workspace run [`assert_no_cycles`] over their `src` in a unit test.
//!
//! A reader of text, not a compiler: it needs no build of the crate it
//! checks, and it errs towards seeing an edge (a path in a string or a doc
//! comment counts), never towards missing one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it imports from.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// `src/web/cart.rs` → `web::cart`; `src/web/mod.rs` → `web`; `lib.rs` → ``.
fn module_name(relative: &Path) -> String {
    let path = relative.with_extension("");
    let parts: Vec<String> = path
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib")
        .collect();
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, found: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Tests may import what they like; only the shipped code is layered.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            let relative = path.strip_prefix(root).expect("under src");
            found.insert(module_name(relative), shipped);
        }
    }
}

/// The longest known module that `path` (`a::b::item`) lies in.
fn owner(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// Every `prefix::a::b` path in `text`, expanding `prefix::{a, b::c}` groups.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let head: String = rest.chars().take_while(|c| word(*c)).collect();
        let after = &rest[head.len()..];
        if let (Some(group), true) = (
            after.strip_prefix('{'),
            head.is_empty() || head.ends_with("::"),
        ) {
            let inside = group.split('}').next().unwrap_or("");
            for item in inside.split(',') {
                found.push(format!("{head}{}", item.trim()));
            }
        } else {
            found.push(head);
        }
    }
    found
}

/// The import graph of the crate whose sources are under `root` (its `src`):
/// each module (`web::cart`, `` for the crate root) to the modules it uses.
pub fn graph(root: &Path) -> Graph {
    let mut files = BTreeMap::new();
    sources(root, root, &mut files);
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, text) in &files {
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        let mut targets: Vec<String> = paths_after(text, "crate::");
        let join = |base: &str, path: &str| {
            if base.is_empty() {
                path.to_string()
            } else {
                format!("{base}::{path}")
            }
        };
        targets.extend(paths_after(text, "super::").iter().map(|p| join(parent, p)));
        // A parent reaches its children by their bare names (`catalog::router()`).
        for child in modules
            .iter()
            .filter(|m| m.rsplit_once("::").map_or("", |(p, _)| p) == module)
        {
            let name = child.rsplit("::").next().unwrap_or("");
            if !paths_after(text, &format!("{name}::")).is_empty() {
                targets.push(child.clone());
            }
        }
        let edges = graph.entry(module.clone()).or_default();
        for target in targets {
            if let Some(owner) = owner(&target, &modules).filter(|o| o != module && !o.is_empty()) {
                edges.insert(owner);
            }
        }
    }
    graph
}

/// A cycle through `start`, as the list of modules on it, if there is one.
pub fn cycle_through(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("paths are never empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

/// Panics, naming the circle, if any module of the crate under `root`
/// imports its way back to itself. `expect_edge` (a module and one it is
/// known to use) proves the sources were read and followed, so the test
/// cannot pass by finding nothing.
pub fn assert_no_cycles(root: &Path, expect_edge: (&str, &str)) {
    let graph = graph(root);
    let (from, to) = expect_edge;
    assert!(
        graph.get(from).is_some_and(|edges| edges.contains(to)),
        "imports are followed: {from} -> {to} not found in {graph:?}"
    );
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|module| {
            cycle_through(&graph, module).map(|c| format!("{} -> {module}", c.join(" -> ")))
        })
        .collect();
    assert!(
        circles.is_empty(),
        "import circles:\n  {}",
        circles.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_finds_grouped_and_relative_imports() {
        let text = "use crate::{db::Db, store::books::{self, Book}};\nuse super::page::render;";
        let crate_paths = paths_after(text, "crate::");
        assert!(
            crate_paths.contains(&"db::Db".to_string()),
            "{crate_paths:?}"
        );
        assert!(
            crate_paths.iter().any(|p| p.starts_with("store::books")),
            "{crate_paths:?}"
        );
        assert_eq!(
            paths_after(text, "super::"),
            vec!["page::render".to_string()]
        );
    }

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_circle_is_found_and_named() {
        let dir = std::env::temp_dir().join(format!("module-graph-{}", std::process::id()));
        write(&dir, "lib.rs", "mod a; mod b;");
        write(&dir, "a.rs", "use crate::b::Thing;");
        write(
            &dir,
            "b/mod.rs",
            "mod c; pub struct Thing; fn f() { c::g() }",
        );
        write(
            &dir,
            "b/c.rs",
            "pub fn g() { crate::a::h() }\n#[cfg(test)]\nuse crate::lib;",
        );
        let graph = graph(&dir);
        assert!(
            graph["b"].contains("b::c"),
            "a parent reaches its child: {graph:?}"
        );
        let circle = cycle_through(&graph, "a").expect("a -> b -> b::c -> a");
        assert_eq!(circle, vec!["a", "b", "b::c"]);
        let caught = std::panic::catch_unwind(|| assert_no_cycles(&dir, ("a", "b")));
        std::fs::remove_dir_all(&dir).unwrap();
        let message = *caught
            .expect_err("the circle fails the check")
            .downcast::<String>()
            .unwrap();
        assert!(message.contains("a -> b -> b::c -> a"), "{message}");
    }
}
