//! The data path's layering, read from the source: the model applies
//! samples and does no I/O, so it imports nothing from the readers
//! (`procfs`, `probes`, `cgroupfs`), the `collector`, the `pipeline` or
//! the `daemon`; the sinks read the model only (no readers, `collector`,
//! `daemon`); the readers never import the `model`. Shared types live in
//! `sample` and `sources`.

use std::path::{Path, PathBuf};

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
    out
}

/// The crate modules a file names: `crate::X::...` anywhere, and the
/// first-level names of `use crate::{X, Y::..}` groups.
fn crate_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group.
            let mut depth = 0;
            let mut name = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if depth == 0 && at_start && !name.is_empty() => {
                        out.push(std::mem::take(&mut name));
                        at_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn layers_import_only_what_the_data_path_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules: [(&str, &[&str]); 5] = [
        (
            "model",
            &[
                "procfs",
                "probes",
                "collector",
                "pipeline",
                "daemon",
                "symbols",
            ],
        ),
        (
            "sinks",
            &["procfs", "probes", "collector", "daemon", "symbols"],
        ),
        ("procfs", &["model"]),
        ("probes", &["model"]),
        ("symbols.rs", &["model", "sinks"]),
    ];
    let mut broken = Vec::new();
    let mut checked = 0;
    for (layer, forbidden) in rules {
        for file in rust_files(&src.join(layer)) {
            let text = std::fs::read_to_string(&file).expect("read source");
            checked += 1;
            for m in crate_modules(&text) {
                if forbidden.contains(&m.as_str()) {
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

#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let text = "use crate::{\n    model::X,\n    procfs::{a, b},\n};\nfn f() { crate::probes::y(); }\n// crate::daemon in a comment\n";
    assert_eq!(crate_modules(text), vec!["model", "procfs", "probes"]);
}
