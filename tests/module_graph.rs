//! The module graph stays acyclic: every top-level module of `src/` may use only modules below
//! it, so a newcomer can read the crate leaves first. This test reads the sources (every
//! `crate::…` path, grouped imports included) and fails naming the cycle when one comes back.
//! `cargo test --test module_graph -- --nocapture` prints the graph, one module a line.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Top-level module → the top-level modules its files name through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(crate_paths(&text).into_iter().filter(|used| *used != module));
    }
    // Items of the crate root (`crate::install_crypto_provider`) are not modules.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    graph.values_mut().for_each(|uses| uses.retain(|used| modules.contains(used)));
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The first segment of every `crate::` path in `text`, outside line comments; for
/// `crate::{a::x, b}` both `a` and `b`.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// The first identifier of each item of a `{…}` group, at its top level.
fn group_heads(group: &str) -> Vec<String> {
    let (mut heads, mut depth, mut at_item_start) = (Vec::new(), 0, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]));
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// A cycle through `start`, if there is one: the modules in order, `start` first and last.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().unwrap().clone();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    for (module, uses) in &graph {
        println!("{module:<10} uses {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle_from(&graph, m)).map(|c| c.join(" → ")).collect();
    assert!(cycles.is_empty(), "the module graph has cycles:\n{}", cycles.join("\n"));
}

/// `lib.rs` declares the modules leaves first: each may use only those declared before it.
#[test]
fn lib_rs_lists_the_modules_in_layer_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = module_graph(&root.join("src"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let order: Vec<String> =
        lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_owned)).collect();
    assert_eq!(order.iter().cloned().collect::<BTreeSet<_>>(), graph.keys().cloned().collect(), "lib.rs: {order:?}");
    let mut upward = Vec::new();
    for (layer, module) in order.iter().enumerate() {
        for used in &graph[module] {
            if order.iter().position(|m| m == used).unwrap() > layer {
                upward.push(format!("{module} uses {used}, declared after it in lib.rs"));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_inline_paths() {
    let text =
        "use crate::{a::X, b::{c, d}, self};\nfn f() { crate::e::g(); $crate::h::i }\n// crate::j\nuse mycrate::k;";
    assert_eq!(crate_paths(text), ["a", "b", "e", "h"]);
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(cycle_from(&graph, "a").unwrap(), ["a", "b", "a"]);
    assert!(cycle_from(&graph, "c").is_none());
}
