//! `cargo xtask deps`: the module dependency graph of every crate in the workspace, and a check
//! that it has no cycle — between files, and between folders at every depth.
//!
//! Read from the source, not the compiler: a module depends on another when its non-test code
//! names it through a path — `crate::a::b`, `super::x`, `self::x`, or a child module's name (`x::`
//! in `a/mod.rs` for `a/x.rs`), in `use` lines (braces included) or inline. The path resolves to the
//! deepest module it names (`crate::nn::ort_backend::build_session` → `nn::ort_backend`; an item of
//! a module file → that module). Test code is left out: everything after a `#[cfg(test)]` line,
//! and modules declared under `#[cfg(test)]` (tests reach into what they test).
//!
//! "Folder level" is the same graph with each module cut to its first `d` path segments
//! (`commands::bench::floor` → `commands` at depth 1), for every `d`: `a/x.rs` using `b/y.rs`
//! while `b/z.rs` uses `a/w.rs` is a cycle at depth 1 even though no two files form one. Cargo's
//! own graph already rules out cycles between crates.
//!
//! Why not `cargo modules`: it is not on this machine's registries' lists and builds rust-analyzer;
//! this reads ~100 files in milliseconds and runs as a unit test in every CI run.

use anyhow::{bail, Context as _, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots checked: each crate's `src/` (library or binary root `lib.rs`/`main.rs`).
pub const CRATE_ROOTS: &[&str] = &[
    "src",
    "crates/pfd-core/src",
    "crates/pfd-signal/src",
    "crates/pfd-tract/src",
    "host/src",
    "xtask/src",
];

/// A module path within its crate, `[]` for the crate root.
type ModPath = Vec<String>;

/// One crate's modules and the dependencies between them.
#[derive(Debug, Default)]
pub struct Graph {
    /// Every module, with its file.
    pub modules: BTreeMap<ModPath, PathBuf>,
    /// Module → the modules it names.
    pub edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

/// Reads the crate whose sources are under `src` (its root `lib.rs`, else `main.rs`).
pub fn read_crate(src: &Path) -> Result<Graph> {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.is_file())
        .with_context(|| format!("{}: no lib.rs or main.rs", src.display()))?;
    let mut graph = Graph::default();
    let mut texts = BTreeMap::new();
    let mut pending = vec![(ModPath::new(), root)];
    while let Some((path, file)) = pending.pop() {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let code = non_test_code(&text);
        // Children: `mod x;` (a file), declared outside test code.
        let dir = if path.is_empty() || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for child in declared_modules(&code) {
            let candidates = [
                dir.join(format!("{child}.rs")),
                dir.join(&child).join("mod.rs"),
            ];
            if let Some(f) = candidates.iter().find(|f| f.is_file()) {
                let mut p = path.clone();
                p.push(child);
                pending.push((p, f.clone()));
            }
        }
        graph.modules.insert(path.clone(), file);
        texts.insert(path, code);
    }
    for (path, code) in &texts {
        let deps = references(code)
            .into_iter()
            .filter_map(|r| resolve(&graph.modules, path, &r))
            .filter(|d| d != path)
            .collect();
        graph.edges.insert(path.clone(), deps);
    }
    Ok(graph)
}

/// The code without test items and `//` comments (doc comments name paths in links that are not
/// dependencies). A test item is the one after a `#[cfg(test)]` line: a declaration (`mod x;`,
/// `use …;`) up to its `;`, or a block (`mod tests { … }`, a test-only `fn`) up to its closing
/// brace.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            let mut depth = 0i32;
            for item in lines.by_ref() {
                let code = strip_comment(item);
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                let trimmed = code.trim_end();
                if depth <= 0 && (trimmed.ends_with(';') || trimmed.ends_with('}')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(strip_comment(line));
        out.push('\n');
    }
    out
}

fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// `mod x;` / `pub mod x;` / `pub(crate) mod x;` declarations.
fn declared_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("pub(super) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            let name = rest.strip_suffix(';')?.trim();
            is_ident(name).then(|| name.to_string())
        })
        .collect()
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Every path in `code` that starts a path (not preceded by `::` or an identifier character), as
/// its segments; `a::{b, c::d}` gives `a::b` and `a::c::d` (one level of braces is enough for the
/// first segment after the prefix, which is all resolution needs).
fn references(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_alphabetic() || bytes[i] == b'_')
            || (i > 0 && (ident_char(bytes[i - 1]) || bytes[i - 1] == b':'))
        {
            i += 1;
            continue;
        }
        let (segments, end) = path_at(code, i);
        if segments.len() > 1 || code[end..].starts_with("::{") {
            if code[end..].starts_with("::{") {
                let open = end + 2;
                let close = matching_brace(code, open).unwrap_or(code.len());
                for part in split_top_level(&code[open + 1..close]) {
                    let (inner, _) = path_at(part.trim_start(), 0);
                    if !inner.is_empty() {
                        let mut p = segments.clone();
                        p.extend(inner);
                        out.push(p);
                    }
                }
            } else {
                out.push(segments);
            }
        }
        i = end.max(i + 1);
    }
    out
}

/// The `a::b::c` path starting at `start`, and where it ends.
fn path_at(code: &str, start: usize) -> (Vec<String>, usize) {
    let bytes = code.as_bytes();
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let s = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if s == i {
            break;
        }
        segments.push(code[s..i].to_string());
        if code[i..].starts_with("::")
            && code[i + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        {
            i += 2;
        } else {
            break;
        }
    }
    (segments, i)
}

fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (k, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + k);
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[from..k]);
                from = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

/// The module `path` (named in module `from`) refers to, if it names one of the crate's modules.
fn resolve(
    modules: &BTreeMap<ModPath, PathBuf>,
    from: &ModPath,
    path: &[String],
) -> Option<ModPath> {
    let (mut base, rest) = match path.first().map(String::as_str) {
        Some("crate") => (ModPath::new(), &path[1..]),
        Some("self") => (from.clone(), &path[1..]),
        Some("super") => {
            let mut base = from.clone();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            (base, rest)
        }
        // A child module of `from`, named without a prefix.
        Some(first) => {
            let mut child = from.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
            (from.clone(), path)
        }
        None => return None,
    };
    for segment in rest {
        let mut next = base.clone();
        next.push(segment.clone());
        if !modules.contains_key(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

/// The graph with every module cut to its first `depth` segments (self-edges dropped: a folder's
/// files using each other is the file level's business).
fn collapsed(graph: &Graph, depth: usize) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let cut = |p: &ModPath| p[..p.len().min(depth)].to_vec();
    let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (from, tos) in &graph.edges {
        let f = cut(from);
        let entry = out.entry(f.clone()).or_default();
        for t in tos {
            let t = cut(t);
            if t != f {
                entry.insert(t);
            }
        }
    }
    out
}

/// One cycle of `edges`, if there is one (as the module paths around it).
fn find_cycle(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Open,
        Done,
    }
    fn visit(
        node: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, State>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        state.insert(node.clone(), State::Open);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(State::Open) => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(State::Done) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.clone(), State::Done);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(p: &ModPath) -> String {
    if p.is_empty() {
        "crate".into()
    } else {
        p.join("::")
    }
}

/// Every cycle found in the crate under `src`, one line each (at each depth, the first found).
pub fn cycles(src: &Path) -> Result<Vec<String>> {
    let graph = read_crate(src)?;
    let depth = graph.modules.keys().map(Vec::len).max().unwrap_or(0);
    let mut found = Vec::new();
    for d in (1..=depth).rev() {
        if let Some(c) = find_cycle(&collapsed(&graph, d)) {
            let kind = if d == depth { "file" } else { "folder" };
            let path: Vec<String> = c.iter().map(show).collect();
            found.push(format!(
                "{}: {kind} level (depth {d}): {}",
                src.display(),
                path.join(" → ")
            ));
        }
    }
    Ok(found)
}

/// `cargo xtask deps [--graph]`: exit 1 naming the cycles, if any; `--graph` prints every edge.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let print_graph = args.iter().any(|a| a == "--graph");
    let mut all = Vec::new();
    for src in CRATE_ROOTS {
        let dir = root.join(src);
        if print_graph {
            let graph = read_crate(&dir)?;
            println!("# {src}");
            for (from, tos) in &graph.edges {
                let tos: Vec<String> = tos.iter().map(show).collect();
                println!("{} → {}", show(from), tos.join(", "));
            }
        }
        all.extend(cycles(&dir)?);
    }
    if all.is_empty() {
        println!("no module cycles in {} crates", CRATE_ROOTS.len());
        Ok(())
    } else {
        for c in &all {
            println!("cycle: {c}");
        }
        bail!("{} module cycle(s)", all.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    #[test]
    fn the_workspace_has_no_module_cycles() {
        // The checkout being tested (see `workspace_root`), not the one this binary was built in.
        let root = crate::workspace_root();
        let mut modules = 0;
        for src in CRATE_ROOTS {
            modules += read_crate(&root.join(src)).unwrap().modules.len();
            let found = cycles(&root.join(src)).unwrap();
            assert!(found.is_empty(), "{found:#?}");
        }
        assert!(
            modules > 60,
            "only {modules} modules under {}",
            root.display()
        );
    }

    #[test]
    fn paths_resolve_to_the_deepest_module_they_name() {
        let dir = tempfile_dir("resolve");
        write(
            &dir,
            &[
                ("lib.rs", "pub mod a;\npub mod b;\npub const V: u32 = 1;\n"),
                (
                    "a/mod.rs",
                    "pub mod x;\n#[cfg(test)]\nmod t;\n#[cfg(test)]\nfn helper() {\n    crate::b::f();\n}\npub use x::Thing;\n",
                ),
                ("a/t.rs", "use crate::b;\n"),
                ("a/x.rs", "use super::super::b::{self, helper};\npub struct Thing;\n"),
                (
                    "b.rs",
                    "use crate::{V, a::x::Thing};\n// crate::a in a comment\n#[cfg(test)]\nmod tests { use crate::a; }\n",
                ),
            ],
        );
        let g = read_crate(&dir).unwrap();
        let m = |s: &str| -> ModPath {
            s.split("::")
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(g.edges[&m("a")], BTreeSet::from([m("a::x")]));
        assert_eq!(g.edges[&m("a::x")], BTreeSet::from([m("b")]));
        assert_eq!(g.edges[&m("b")], BTreeSet::from([m(""), m("a::x")]));
        // b → a::x → b: a file-level cycle, reported.
        let found = cycles(&dir).unwrap();
        assert!(found.iter().any(|c| c.contains("file level")), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cycle_between_folders_is_found_where_no_two_files_form_one() {
        let dir = tempfile_dir("folders");
        write(
            &dir,
            &[
                ("lib.rs", "pub mod a;\npub mod b;\n"),
                ("a/mod.rs", "pub mod x;\npub mod w;\n"),
                ("a/x.rs", "use crate::b::y::f;\n"),
                ("a/w.rs", "pub fn g() {}\n"),
                ("b/mod.rs", "pub mod y;\npub mod z;\n"),
                ("b/y.rs", "pub fn f() {}\n"),
                ("b/z.rs", "use crate::a::w::g;\n"),
            ],
        );
        let found = cycles(&dir).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("folder level (depth 1)"), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-deps-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
