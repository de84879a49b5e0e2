//! The data path's layering, read from the source: the model applies
//! samples and does no I/O, so it imports nothing from the readers
//! (`procfs`, `probes`, `cgroupfs`, `symbols`), the `collector`, the
//! `pipeline` or the `daemon`; the sinks read the model only (no readers,
//! `collector`, `daemon`); the readers never import the `model` or the
//! sinks. Shared types live in `sample` (readings: they import no reader,
//! only `sources`) and `sources` (the names of sources: it imports nothing
//! of the crate). And no import cycle: between the crate's top-level
//! modules, nor between the modules of any folder (its `mod.rs` excepted:
//! a folder's root owns its children). Test modules are left out of the
//! cycle check (a test may reach across to bind two catalogs), not out of
//! the layering rules.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

/// Every .rs file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `text` without its comment lines.
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate modules a file names: `crate::X::...` anywhere, and the
/// first-level names of `use crate::{X, Y::..}` groups.
fn crate_modules(text: &str) -> Vec<String> {
    paths_from(&code_of(text))
        .into_iter()
        .filter(|p| p.first().is_some_and(|s| s == "crate"))
        .filter_map(|p| p.get(1).cloned())
        .collect()
}

/// Every path that starts with `crate`, `super` or `self` in `code`, with
/// `use` groups expanded (`crate::{a::X, b::{c, d}}` is three paths; a
/// glob ends its path).
fn paths_from(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if boundary {
            for start in ["crate", "super", "self"] {
                let word: String = chars[i..].iter().take(start.len() + 2).collect();
                if word == format!("{start}::") {
                    let mut p = Parser {
                        chars: &chars,
                        at: i,
                    };
                    p.tree(Vec::new(), &mut out);
                    i = p.at.max(i + 1);
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

/// A reader of Rust paths and `use` trees.
struct Parser<'a> {
    chars: &'a [char],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_space();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.at += 1;
        }
        (self.at > start).then(|| self.chars[start..self.at].iter().collect())
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        let n = s.chars().count();
        let here: String = self.chars[self.at..].iter().take(n).collect();
        if here == s {
            self.at += n;
            true
        } else {
            false
        }
    }

    /// One tree below `prefix`: `a::b::{tree, tree}`, `a::b`, `a::*`.
    fn tree(&mut self, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        loop {
            if self.eat("{") {
                loop {
                    if self.eat("}") {
                        return;
                    }
                    self.tree(prefix.clone(), out);
                    if !self.eat(",") {
                        self.eat("}");
                        return;
                    }
                }
            }
            if self.eat("*") {
                out.push(prefix);
                return;
            }
            match self.ident() {
                Some(seg) => prefix.push(seg),
                None => break,
            }
            if !self.eat("::") {
                break;
            }
        }
        if self.eat("as") {
            self.ident();
        }
        if !prefix.is_empty() {
            out.push(prefix);
        }
    }
}

/// A source file of the crate, as a module.
struct ModFile {
    /// Path below `src/`, for messages.
    file: String,
    /// Module path (`model/view.rs` → `[model, view]`, `model/mod.rs` →
    /// `[model]`).
    module: Vec<String>,
    /// The code, comments and test modules left out.
    code: String,
}

/// The code of `text` without its `#[cfg(test)]` modules (an inline
/// `mod x { .. }` up to its closing brace at column 0), and the names of
/// test modules it declares in files of their own.
fn without_tests(text: &str) -> (String, Vec<String>) {
    let mut kept = Vec::new();
    let mut test_files = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("#[cfg(test)]") {
            let Some(next) = lines.peek().copied() else {
                break;
            };
            let decl = next
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(name) = decl.strip_prefix("mod ") {
                lines.next();
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if next.trim_end().ends_with(';') {
                    test_files.push(name);
                } else {
                    for l in lines.by_ref() {
                        if l == "}" {
                            break;
                        }
                    }
                }
                continue;
            }
        }
        kept.push(line);
    }
    (code_of(&kept.join("\n")), test_files)
}

/// The crate's library modules (lib.rs and what it declares; not main.rs
/// or bin/), test-only files left out.
fn crate_files(src: &Path) -> Vec<ModFile> {
    let mut out = Vec::new();
    let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).expect("under src");
        let rel_s = rel.to_string_lossy().to_string();
        if rel_s == "main.rs" || rel_s.starts_with("bin/") {
            continue;
        }
        let mut module: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if module.last().is_some_and(|m| m == "mod" || m == "lib") {
            module.pop();
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let (code, tests) = without_tests(&text);
        for t in tests {
            let mut m = module.clone();
            m.push(t);
            test_only.insert(m);
        }
        out.push(ModFile {
            file: rel_s,
            module,
            code,
        });
    }
    out.retain(|f| !test_only.iter().any(|t| f.module.starts_with(t)));
    out
}

/// The module graph: which module each file's paths land in, with
/// re-exports (`pub use x::Y`) followed to where `Y` is defined.
struct Graph {
    modules: BTreeSet<Vec<String>>,
    /// (module, name) → the absolute path it re-exports.
    reexports: HashMap<(Vec<String>, String), Vec<String>>,
}

impl Graph {
    fn new(files: &[ModFile]) -> Self {
        let modules = files.iter().map(|f| f.module.clone()).collect();
        let mut g = Graph {
            modules,
            reexports: HashMap::new(),
        };
        for f in files {
            let mut rest = f.code.as_str();
            while let Some(i) = rest.find("pub use ") {
                rest = &rest[i + "pub use ".len()..];
                let chars: Vec<char> = rest.chars().collect();
                let mut p = Parser {
                    chars: &chars,
                    at: 0,
                };
                let mut paths = Vec::new();
                p.tree(Vec::new(), &mut paths);
                for path in paths {
                    let Some(name) = path.last().cloned() else {
                        continue;
                    };
                    let abs = match path[0].as_str() {
                        "crate" | "super" | "self" => g.absolute(&f.module, &path),
                        // A child module's item (2018 paths).
                        _ => f.module.iter().cloned().chain(path).collect(),
                    };
                    g.reexports.insert((f.module.clone(), name), abs);
                }
            }
        }
        g
    }

    /// `path` (from `crate`, `super` or `self`) as seen from `module`.
    fn absolute(&self, module: &[String], path: &[String]) -> Vec<String> {
        let mut base: Vec<String> = match path.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            _ => module.to_vec(),
        };
        let mut rest = path;
        if rest.first().is_some_and(|s| s == "crate" || s == "self") {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        base
    }

    /// The module an absolute path lands in.
    fn resolve(&self, path: &[String], depth: u8) -> Vec<String> {
        let mut n = path.len();
        while n > 0 && !self.modules.contains(&path[..n]) {
            n -= 1;
        }
        let module = path[..n].to_vec();
        if let Some(name) = path.get(n)
            && depth < 8
            && let Some(target) = self.reexports.get(&(module.clone(), name.clone()))
        {
            let mut next = target.clone();
            next.extend(path[n + 1..].iter().cloned());
            return self.resolve(&next, depth + 1);
        }
        module
    }

    /// Every (from module, to module, file, path) import.
    fn edges(&self, files: &[ModFile]) -> Vec<(Vec<String>, Vec<String>, String)> {
        let mut out = Vec::new();
        for f in files {
            for path in paths_from(&f.code) {
                let to = self.resolve(&self.absolute(&f.module, &path), 0);
                out.push((
                    f.module.clone(),
                    to,
                    format!("{} uses {}", f.file, path.join("::")),
                ));
            }
        }
        out
    }
}

/// The import cycles among the children of `scope` (the crate root, or a
/// folder): each as the names around it, with one import per step.
fn cycles_in(scope: &[String], edges: &[(Vec<String>, Vec<String>, String)]) -> Vec<String> {
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to, why) in edges {
        if from.len() <= scope.len()
            || to.len() <= scope.len()
            || !from.starts_with(scope)
            || !to.starts_with(scope)
        {
            continue;
        }
        let (a, b) = (&from[scope.len()], &to[scope.len()]);
        if a != b {
            graph
                .entry(a.clone())
                .or_default()
                .entry(b.clone())
                .or_insert_with(|| why.clone());
        }
    }
    // A cycle through each node that reaches itself (shortest, by BFS).
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for start in graph.keys() {
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closed = None;
        while let Some(n) = queue.pop_front() {
            for next in graph.get(n).into_iter().flat_map(|m| m.keys()) {
                if next == start {
                    closed = Some(n);
                    break;
                }
                if !prev.contains_key(next) {
                    prev.insert(next, n);
                    queue.push_back(next);
                }
            }
            if closed.is_some() {
                break;
            }
        }
        let Some(mut n) = closed else {
            continue;
        };
        let mut ring = vec![n.clone()];
        while n != start {
            n = prev[n];
            ring.push(n.clone());
        }
        ring.reverse();
        let mut key = ring.clone();
        key.sort();
        if !found.insert(key) {
            continue;
        }
        let steps: Vec<String> = ring
            .iter()
            .zip(ring.iter().cycle().skip(1))
            .map(|(a, b)| format!("    {a} → {b}: {}", graph[a][b]))
            .collect();
        let name = if scope.is_empty() {
            "crate".to_string()
        } else {
            scope.join("/")
        };
        out.push(format!(
            "{name}: {} → {}\n{}",
            ring.join(" → "),
            ring[0],
            steps.join("\n")
        ));
    }
    out
}

/// What a layer may import: nothing of these lists, or only a list.
enum Rule {
    Not(&'static [&'static [&'static str]]),
    Only(&'static [&'static str]),
}

/// What a reader of the kernel, /proc or cgroupfs must not import.
const READER_NOT: &[&str] = &[
    "model",
    "sinks",
    "collector",
    "pipeline",
    "daemon",
    "commands",
    "store",
];

/// The readers and what wires them: what the model and the store (which
/// do no I/O) must not import.
const IO: &[&str] = &[
    "procfs",
    "probes",
    "cgroupfs",
    "symbols",
    "collector",
    "pipeline",
    "daemon",
];

#[test]
fn layers_import_only_what_the_data_path_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules: [(&str, Rule); 9] = [
        (
            "model",
            Rule::Not(&[IO, &["sinks", "commands", "store", "clock"]]),
        ),
        (
            "sinks",
            Rule::Not(&[&[
                "procfs",
                "probes",
                "cgroupfs",
                "collector",
                "daemon",
                "symbols",
            ]]),
        ),
        ("procfs", Rule::Not(&[READER_NOT])),
        ("probes", Rule::Not(&[READER_NOT])),
        ("cgroupfs", Rule::Not(&[READER_NOT])),
        ("symbols.rs", Rule::Not(&[READER_NOT])),
        // Readings: what the readers return and the model applies.
        ("sample", Rule::Only(&["sample", "sources"])),
        ("sources.rs", Rule::Only(&[])),
        ("store", Rule::Not(&[IO])),
    ];
    let mut broken = Vec::new();
    let mut checked = 0;
    for (layer, rule) in rules {
        for file in rust_files(&src.join(layer)) {
            let text = std::fs::read_to_string(&file).expect("read source");
            checked += 1;
            for m in crate_modules(&text) {
                let bad = match rule {
                    Rule::Not(lists) => lists.iter().any(|l| l.contains(&m.as_str())),
                    Rule::Only(list) => !list.contains(&m.as_str()),
                };
                if bad {
                    broken.push(format!(
                        "{} uses crate::{m}",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} files read");
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

/// True when `code` has `word` not inside a longer name (`fs::` is
/// not found in `procfs::`).
fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The model is handed the time with each sample: its code (tests aside)
/// reads no clock.
#[test]
fn the_model_reads_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let model: Vec<ModFile> = crate_files(&src)
        .into_iter()
        .filter(|f| f.module.first().is_some_and(|m| m == "model"))
        .collect();
    assert!(model.len() > 10, "only {} model files read", model.len());
    for f in model {
        for clock in ["Instant::now", "SystemTime::now", "unix_ms()"] {
            if f.code.contains(clock) {
                found.push(format!("{} calls {clock}", f.file));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the model reads the clock:\n{}",
        found.join("\n")
    );
}

/// On the sampling path only the collector and the readers do I/O: the
/// model and the pipeline (tests aside) open no file, directory or socket.
#[test]
fn only_the_collector_and_the_readers_do_io_on_the_sampling_path() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let files: Vec<ModFile> = crate_files(&src)
        .into_iter()
        .filter(|f| {
            f.module
                .first()
                .is_some_and(|m| m == "model" || m == "pipeline")
        })
        .collect();
    assert!(files.len() > 10, "only {} files read", files.len());
    for f in files {
        for io in [
            "fs::",
            "File::",
            "read_dir",
            "net::",
            "TcpStream",
            "UdpSocket",
        ] {
            if has_word(&f.code, io) {
                found.push(format!("{} uses {io}", f.file));
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O outside the collector:\n{}",
        found.join("\n")
    );
}

/// Import cycles known and being removed, as `scope: a → b` steps that are
/// left out of the check. Each must still exist: delete it with the fix.
const KNOWN: &[&str] = &[];

#[test]
fn no_module_imports_itself_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_no_cycles(&src, 100);
}

/// xtask (test ↔ vm_test ↔ bench, cmd ↔ setup ↔ packages ↔ toolchain,
/// dist ↔ image were cycles): its modules below main.rs, checked alike.
#[test]
fn xtask_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/src");
    assert_no_cycles(&src, 25);
}

/// No cycle in any scope of the crate under `src` (at least `min_files`
/// files read); the `KNOWN` steps left out.
fn assert_no_cycles(src: &Path, min_files: usize) {
    let files = crate_files(src);
    assert!(files.len() > min_files, "only {} files read", files.len());
    let graph = Graph::new(&files);
    let all = graph.edges(&files);
    let known = |from: &[String], to: &[String]| {
        KNOWN.iter().position(|k| {
            let (scope, step) = k.split_once(": ").expect("scope: a → b");
            let (a, b) = step.split_once(" → ").expect("a → b");
            let scope: Vec<&str> = scope.split('/').collect();
            let n = scope.len();
            from.len() > n
                && to.len() > n
                && from[..n].iter().zip(&scope).all(|(x, y)| x == y)
                && to[..n].iter().zip(&scope).all(|(x, y)| x == y)
                && from[n] == a
                && to[n] == b
        })
    };
    let mut used = BTreeSet::new();
    let edges: Vec<_> = all
        .into_iter()
        .filter(|(from, to, _)| match known(from, to) {
            Some(k) => {
                used.insert(k);
                false
            }
            None => true,
        })
        .collect();
    let mut scopes: BTreeSet<Vec<String>> = BTreeSet::from([Vec::new()]);
    for f in &files {
        scopes.extend((1..f.module.len()).map(|n| f.module[..n].to_vec()));
    }
    let cycles: Vec<String> = scopes.iter().flat_map(|s| cycles_in(s, &edges)).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
    let stale: Vec<&str> = (0..KNOWN.len())
        .filter(|k| !used.contains(k))
        .map(|k| KNOWN[k])
        .collect();
    assert!(
        stale.is_empty(),
        "no import left for {stale:?}: delete it from KNOWN"
    );
}

#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let text = "use crate::{\n    model::X,\n    procfs::{a, b},\n};\nfn f() { crate::probes::y(); }\n// crate::daemon in a comment\n";
    assert_eq!(
        crate_modules(text),
        vec!["model", "procfs", "procfs", "probes"]
    );
    let paths = paths_from("use super::{a::{B, c as d}, e::*};\nlet x = self::f::G;");
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        ["super::a::B", "super::a::c", "super::e", "self::f::G"]
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_and_names_its_imports() {
    let m = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
    let edges = vec![
        (
            m("model/fields"),
            m("model/view"),
            "fields.rs uses view".into(),
        ),
        (
            m("model/view"),
            m("model/process"),
            "view.rs uses process".into(),
        ),
        (
            m("model/process"),
            m("model/fields"),
            "process.rs uses fields".into(),
        ),
        (m("model"), m("model/view"), "mod.rs uses view".into()),
        (m("model/view"), m("model"), "view.rs uses the root".into()),
    ];
    let found = cycles_in(&m("model"), &edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("model: fields → view → process → fields"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("process.rs uses fields"));
    assert!(cycles_in(&[], &edges).is_empty(), "one top-level module");
}
