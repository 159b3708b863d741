//! The layout shows the architecture, and stays that way: data flows one way through the
//! concepts (reject → seal → drift → verify → archive, restore, rollback, selftest), so no two
//! concepts import each other, and no two sibling modules do. Read from the sources: every
//! `crate::…` and `super::…` path outside comments and test modules is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `seal/build.rs` → `seal::build`, `seal/mod.rs` → `seal`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The short paths `lib.rs` re-exports, and the module each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("digest", "seal::digest"),
    ("json", "seal::json"),
    ("manifest", "seal::manifest"),
    ("pin", "seal::pin"),
    ("profile", "seal::profile"),
    ("staging", "seal::staging"),
    ("strict", "seal::strict"),
    ("walk", "seal::walk"),
    ("report", "verify::report"),
    ("pack", "archive::pack"),
    ("unpack", "archive::unpack"),
];

/// Module → the modules its code (not its comments or tests) names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&root).unwrap()))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let resolve = |path: &str| -> Option<String> {
        let mut parts: Vec<&str> = path.split("::").collect();
        if let Some((_, full)) = ALIASES.iter().find(|(a, _)| *a == parts[0]) {
            let mut v: Vec<&str> = full.split("::").collect();
            v.extend(&parts[1..]);
            parts = v;
        }
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut out = BTreeMap::new();
    for f in &files {
        let module = module_of(f.strip_prefix(&root).unwrap());
        if module == "lib" || module == "main" {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let mut deps = BTreeSet::new();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let line = line.split("//").next().unwrap();
            for (prefix, base) in [("crate::", String::new()), ("super::", parent(&module))] {
                for (i, _) in line.match_indices(prefix) {
                    let rest: String = line[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let path = if base.is_empty() {
                        rest
                    } else {
                        format!("{base}::{rest}")
                    };
                    if let Some(dep) = resolve(path.trim_end_matches(':'))
                        && dep != module
                    {
                        deps.insert(dep);
                    }
                }
            }
        }
        out.insert(module, deps);
    }
    out
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// The concept a module belongs to: its top-level name.
fn concept(module: &str) -> &str {
    module.split("::").next().unwrap()
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn concepts_import_each_other_one_way_only() {
    let mut concepts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in graph() {
        let c = concept(&m).to_string();
        let entry = concepts.entry(c.clone()).or_default();
        entry.extend(
            deps.iter()
                .map(|d| concept(d).to_string())
                .filter(|d| *d != c),
        );
    }
    assert_eq!(cycle(&concepts), None, "{concepts:#?}");
    // The leaf every stage shares depends on nothing.
    assert!(concepts["reject"].is_empty(), "{:?}", concepts["reject"]);
    // The seal format knows nothing of how it is checked or diagnosed.
    for later in ["verify", "drift", "archive", "restore", "selftest"] {
        assert!(!concepts["seal"].contains(later), "seal imports {later}");
    }
    assert!(
        !concepts["drift"].contains("verify"),
        "drift imports verify"
    );
}

#[test]
fn sibling_modules_import_each_other_one_way_only() {
    // A folder's mod.rs and its children may name each other (re-exports, shared types);
    // siblings may not, in a circle.
    let g: BTreeMap<String, BTreeSet<String>> = graph()
        .into_iter()
        .map(|(m, deps)| {
            let deps = deps
                .into_iter()
                .filter(|d| parent(d) != m && parent(&m) != *d)
                .collect();
            (m, deps)
        })
        .collect();
    assert_eq!(cycle(&g), None);
    assert!(g.contains_key("seal::json") && g.contains_key("drift::search"));
}
