//! The shape of the code: calls go one way. Reads `src/` as text and builds the graph of
//! module dependencies (`crate::…` and `super::…` paths, at the granularity of files), then
//! checks that it has no cycle and that the two HTTP adapters do not reach into each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path ("web::jobs") → source text, for every file under `src/` of the library.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                if name == "bin" {
                    continue;
                }
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.to_vec();
                if !matches!(name.as_str(), "mod" | "lib" | "main") {
                    p.push(name);
                } else if name == "main" && prefix.is_empty() {
                    // The binary is not part of the library's graph.
                    continue;
                }
                out.insert(p.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&src, &[], &mut out);
    // Modules of the binary (`mod bench;` in main.rs) are not part of the library.
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
    for line in main.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix("mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            out.remove(name);
        }
    }
    out
}

/// A source text split into its code (comments and string literals blanked, so that paths
/// in them do not count) and its plain `"…"` string literals (which is how SQL is written
/// here).
fn split_source(text: &str) -> (String, Vec<String>) {
    let mut code = String::with_capacity(text.len());
    let mut literals = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut literal = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                    literal.push(c);
                }
                literals.push(literal);
                code.push_str("\"\"");
            }
            _ => code.push(c),
        }
    }
    (code, literals)
}

/// The code of a file without comments and string literals, and without the unit tests at
/// the end (`#[cfg(test)]`), whose `super::` is the file itself.
fn code_only(text: &str) -> String {
    split_source(text.split("#[cfg(test)]").next().unwrap_or(text)).0
}

/// The paths a file names after `crate::` or `super::`, as absolute module paths,
/// including those inside `use crate::{a, b::c}` groups.
fn referenced_paths(module: &str, text: &str) -> Vec<Vec<String>> {
    let code = code_only(text);
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let (base, skip) = if rest.starts_with("crate::") && (i == 0 || !ident(bytes[i - 1])) {
            (Vec::new(), 7)
        } else if rest.starts_with("super::") && (i == 0 || !ident(bytes[i - 1])) {
            let mut parent: Vec<String> = module.split("::").map(str::to_owned).collect();
            parent.pop();
            (parent, 7)
        } else {
            i += 1;
            continue;
        };
        i += skip;
        // One path, or a `{…}` group of paths.
        let mut group = Vec::new();
        if bytes.get(i) == Some(&'{') {
            let mut depth = 0;
            let mut j = i;
            while j < bytes.len() {
                match bytes[j] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let inner: String = bytes[i + 1..j].iter().collect();
            // Nested groups are rare here; their first segment is what matters.
            for item in inner.split(',') {
                // `jobs as pages` names `jobs`.
                let item = item.trim().trim_start_matches('{');
                let item = item.split(" as ").next().unwrap_or(item).trim();
                let segs: Vec<String> = item
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .take_while(|s| !s.is_empty() && s.chars().all(ident))
                    .collect();
                if !segs.is_empty() {
                    group.push(segs);
                }
            }
            i = j;
        } else {
            let mut segs = Vec::new();
            let mut current = String::new();
            while i < bytes.len() {
                let c = bytes[i];
                if ident(c) {
                    current.push(c);
                    i += 1;
                } else if c == ':' && bytes.get(i + 1) == Some(&':') && !current.is_empty() {
                    segs.push(std::mem::take(&mut current));
                    i += 2;
                    if bytes.get(i) == Some(&'{') {
                        break;
                    }
                } else {
                    break;
                }
            }
            if !current.is_empty() {
                segs.push(current);
            }
            group.push(segs);
        }
        for segs in group {
            let mut full = base.clone();
            full.extend(segs);
            paths.push(full);
        }
    }
    // Children declared here (`mod jobs;`) and used by a relative path (`jobs::routes()`).
    for line in code.lines() {
        let line = line.trim();
        let Some(child) = line
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        else {
            continue;
        };
        let pattern = format!("{child}::");
        let used = code
            .match_indices(&pattern)
            .any(|(at, _)| at == 0 || !code[..at].ends_with(|c: char| ident(c) || c == ':'));
        if used {
            let mut full: Vec<String> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").map(str::to_owned).collect()
            };
            full.push(child.to_string());
            paths.push(full);
        }
    }
    paths
}

/// Module → the other modules it uses (the longest known module prefix of each path).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (module, text) in &modules {
        let mut deps = BTreeSet::new();
        for path in referenced_paths(module, text) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|p| modules.contains_key(p));
            if let Some(target) = target
                && &target != module
            {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// One cycle of the graph, if any (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, graph, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_reads_the_paths_a_file_uses() {
    let paths = referenced_paths(
        "web::jobs",
        "mod page;\nuse super::{filters as f};\nuse crate::{jobs::{self, Job}, error::AppError};\n// crate::cli\nlet x = \"crate::bench\"; super::forms::read(); crate::db::connect(); page::Layout",
    );
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"jobs".to_string()), "{joined:?}");
    assert!(
        joined.contains(&"error::AppError".to_string()),
        "{joined:?}"
    );
    assert!(
        joined.contains(&"web::forms::read".to_string()),
        "{joined:?}"
    );
    assert!(joined.contains(&"db::connect".to_string()), "{joined:?}");
    assert!(
        joined.contains(&"web::jobs::page".to_string()),
        "{joined:?}"
    );
    assert!(
        !joined
            .iter()
            .any(|p| p.starts_with("cli") || p.starts_with("bench"))
    );

    let mut cyclic = BTreeMap::new();
    cyclic.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    cyclic.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&cyclic).is_some());
    cyclic.insert("b".to_string(), BTreeSet::new());
    assert!(find_cycle(&cyclic).is_none());
}

#[test]
fn the_two_http_adapters_do_not_reach_into_each_other() {
    for (module, deps) in graph() {
        let side = module.split("::").next().unwrap();
        let other = match side {
            "web" => "api",
            "api" => "web",
            _ => continue,
        };
        let crossing: Vec<&String> = deps
            .iter()
            .filter(|d| d.split("::").next() == Some(other))
            .collect();
        assert!(
            crossing.is_empty(),
            "{module} uses {crossing:?}: shared HTTP pieces belong in a module of their own"
        );
    }
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = graph();
    assert!(graph.len() > 30, "read the modules: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn statuses_levels_and_outcomes_are_written_in_sql_only_by_the_job_lifecycle() {
    const WORDS: &[&str] = &[
        "queued",
        "scheduled",
        "running",
        "success",
        "partial",
        "failed",
        "cancelled",
        "Pending",
        "Queued",
        "Running",
        "Done",
        "Failed",
        "Killed",
        "info",
        "warning",
        "error",
        "healthy",
        "degraded",
        "offline",
    ];
    let mut found = Vec::new();
    for (module, text) in modules() {
        if module == "lifecycle" {
            continue;
        }
        for literal in split_source(&text).1 {
            let is_sql = ["SELECT ", "UPDATE ", "INSERT ", "DELETE "]
                .iter()
                .any(|k| literal.contains(k));
            if !is_sql {
                continue;
            }
            for word in WORDS {
                if literal.contains(&format!("'{word}'")) {
                    found.push(format!("{module}: '{word}'"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "bind the enum, or move the statement into lifecycle.rs: {found:?}"
    );
}
