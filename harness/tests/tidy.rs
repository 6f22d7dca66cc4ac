//! Tidy checks on the harness's own source, as rust-analyzer's `tidy` tests do: the layers
//! inside `harness` go one way.
//!
//! ARCHITECTURE.md lists the layers, lowest first (the numbered list under "Layers inside
//! `harness`"). A module may use its own layer and the layers below; this test reads every
//! `crate::` path in `harness/src` (in `use` items, `use crate::{a, b::c}` groups and inline
//! paths alike, plus `super::` paths that climb to the crate root and exported macros) and fails
//! on any that reaches up, naming the file and line. It also fails on an import circle among
//! the top-level modules, and on a module that no layer names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A reference from one top-level module to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    /// The file, relative to `src/`.
    file: String,
    /// 1-based.
    line: usize,
    /// The module the file belongs to.
    from: String,
    /// The module it reaches.
    to: String,
}

/// Blanks out comments, string literals and character literals (newlines kept, so byte
/// offsets still give line numbers), so paths inside them are not read as code.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < bytes.len() && depth > 0 {
                    if bytes[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if bytes[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = text[body..].find(&close).map_or(bytes.len(), |n| body + n + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, (j + 1).min(bytes.len()));
                i = j + 1;
            }
            // A character literal ('x', '\n', '\u{1F600}'), not a lifetime ('a).
            b'\'' => {
                let rest = &text[i + 1..];
                let len = if rest.starts_with('\\') {
                    rest.find('\'').map(|n| n + 1)
                } else {
                    rest.chars().next().filter(|_| rest.chars().nth(1) == Some('\'')).map(|c| c.len_utf8() + 1)
                };
                match len {
                    Some(len) => {
                        blank(&mut out, i, i + 1 + len);
                        i += 1 + len;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier at the start of `s`, after whitespace.
fn leading_ident(s: &str) -> &str {
    let s = s.trim_start();
    &s[..s.bytes().position(|b| !is_ident(b)).unwrap_or(s.len())]
}

/// The top-level names a `crate::` path reaches, each with its byte offset in `rest`:
/// `crate::pki::Pki` gives `pki`, `crate::{pki::Pki, source}` gives `pki` and `source`.
/// `rest` starts after `crate::`.
fn reached_names(rest: &str) -> Vec<(usize, String)> {
    let skipped = rest.len() - rest.trim_start().len();
    let rest = rest.trim_start();
    if !rest.starts_with('{') {
        return vec![(skipped, leading_ident(rest).to_string())];
    }
    let mut names = Vec::new();
    let (mut depth, mut item_start) = (0, 1);
    for (i, b) in rest.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' | b',' if depth == 1 => {
                let item = &rest[item_start..i];
                let name = leading_ident(item);
                if !name.is_empty() && name != "self" {
                    let at = skipped + item_start + item.len() - item.trim_start().len();
                    names.push((at, name.to_string()));
                }
                item_start = i + 1;
                if b == b'}' {
                    break;
                }
            }
            b'}' => depth -= 1,
            _ => {}
        }
    }
    names
}

/// The module path of a file under `src/`: `scenario/run.rs` is `[scenario, run]`,
/// `lab/mod.rs` and `lab.rs` are `[lab]`.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every reference from `file` (relative to `src/`) to another top-level module.
/// `macros` maps an exported macro's name to the module defining it.
fn references(file: &str, text: &str, macros: &BTreeMap<String, String>) -> Vec<Reference> {
    let module = module_path(file);
    let Some(from) = module.first().cloned() else { return Vec::new() };
    let code = code_only(text);
    let line_of = |offset: usize| code[..offset].bytes().filter(|&b| b == b'\n').count() + 1;
    let mut found = Vec::new();
    let mut push = |offset: usize, to: String| {
        let to = macros.get(&to).cloned().unwrap_or(to);
        if !to.is_empty() && to != from {
            found.push(Reference { file: file.to_string(), line: line_of(offset), from: from.clone(), to });
        }
    };
    let bytes = code.as_bytes();
    for (offset, _) in code.match_indices("crate::") {
        if offset > 0 && (is_ident(bytes[offset - 1]) || bytes[offset - 1] == b'$') {
            continue;
        }
        let rest = offset + "crate::".len();
        for (at, name) in reached_names(&code[rest..]) {
            push(rest + at, name);
        }
    }
    for (offset, _) in code.match_indices("super::") {
        if offset > 0 && (is_ident(bytes[offset - 1]) || bytes[offset - 1] == b':') {
            continue;
        }
        let mut rest = &code[offset..];
        let mut climbs = 0;
        while let Some(after) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = after.trim_start();
        }
        // `super` from a file's module goes to its parent; from the crate root's children
        // (`lab.rs`, `lab/mod.rs`) one climb reaches the crate root.
        if climbs >= module.len() {
            let rest_offset = code.len() - rest.len();
            for (at, name) in reached_names(rest) {
                push(rest_offset + at, name);
            }
        }
    }
    found
}

/// Exported macros (`#[macro_export] macro_rules! name`) and the module each is defined in.
fn exported_macros(files: &[(String, String)]) -> BTreeMap<String, String> {
    let mut macros = BTreeMap::new();
    for (file, text) in files {
        let code = code_only(text);
        for (offset, _) in code.match_indices("macro_rules!") {
            if code[..offset].trim_end().ends_with("#[macro_export]") {
                let name = leading_ident(&code[offset + "macro_rules!".len()..]);
                macros.insert(name.to_string(), module_path(file)[0].clone());
            }
        }
    }
    macros
}

/// The layers, lowest first, from ARCHITECTURE.md's numbered list under "Layers inside
/// `harness`": each item's backquoted names before its colon.
fn layers_from_architecture(text: &str) -> Vec<Vec<String>> {
    let Some(start) = text.find("## Layers inside `harness`") else { return Vec::new() };
    let section = &text[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |n| n + 3)];
    section
        .lines()
        .filter(|line| line.split_once(". ").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit())))
        .map(|line| {
            let names = line.split_once(". ").map_or("", |(_, rest)| rest);
            let names = names.split_once(':').map_or(names, |(names, _)| names);
            names.split('`').skip(1).step_by(2).map(str::to_string).collect()
        })
        .collect()
}

/// Everything wrong with the layering of `files` (path under `src/`, text), one line each.
fn check(files: &[(String, String)], layers: &[Vec<String>]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i + 1))).collect();
    let macros = exported_macros(files);
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<String> =
        files.iter().filter(|(f, _)| f != "lib.rs").map(|(f, _)| module_path(f)[0].clone()).collect();
    for module in &modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!("module `{module}` is in no layer: add it to ARCHITECTURE.md's list"));
        }
    }
    for (file, text) in files.iter().filter(|(f, _)| f != "lib.rs") {
        for r in references(file, text, &macros) {
            if !modules.contains(&r.to) {
                continue; // an exported macro's own name, or a path this check cannot place
            }
            graph.entry(r.from.clone()).or_default().insert(r.to.clone());
            if let (Some(&from), Some(&to)) = (layer_of.get(r.from.as_str()), layer_of.get(r.to.as_str()))
                && to > from
            {
                problems.push(format!(
                    "src/{}:{}: `{}` (layer {from}) reaches up to `{}` (layer {to})",
                    r.file, r.line, r.from, r.to
                ));
            }
        }
    }
    problems.extend(circles(&graph));
    problems
}

/// Every import circle among the modules of `graph`, once each, as `a -> b -> a`.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`, only through modules after it, so each circle is found
        // from its smallest member once.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    found.insert(format!("import circle: {} -> {start}", path.join(" -> ")));
                } else if next > start && !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().collect()
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read src").map(|e| e.expect("read src entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).expect("read source file")));
        }
    }
}

#[test]
fn harness_modules_only_use_their_own_layer_and_the_ones_below() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(manifest.join("../ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let layers = layers_from_architecture(&architecture);
    assert!(layers.len() >= 5, "ARCHITECTURE.md's layer list was not found or is short: {layers:?}");
    let mut files = Vec::new();
    source_files(&manifest.join("src"), &manifest.join("src"), &mut files);
    let problems = check(&files, &layers);
    assert!(problems.is_empty(), "{} layering problem(s):\n{}", problems.len(), problems.join("\n"));
}

fn layers() -> Vec<Vec<String>> {
    layers_from_architecture(
        "## Layers inside `harness`\n1. `source`: text\n2. `pki`, `chain`: certificates\n3. `fleet`: nodes\n\
         4. `scenario`: runs\n\n## Next\n5. `not`, `a layer`\n",
    )
}

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_string(), text.to_string())
}

#[test]
fn the_layer_list_is_read_from_its_section_only() {
    assert_eq!(layers(), vec![vec!["source"], vec!["pki", "chain"], vec!["fleet"], vec!["scenario"]]);
}

#[test]
fn a_planted_upward_import_fails_with_file_and_line() {
    let files = [
        file("source.rs", "pub fn f() {}\n"),
        file("pki/mod.rs", "use crate::source::f;\n"),
        file("fleet.rs", "//! doc\nuse crate::pki;\nfn g() { crate::scenario::run(); }\n"),
        file("scenario/mod.rs", "use crate::fleet;\n"),
    ];
    assert_eq!(
        check(&files, &layers()),
        [
            "src/fleet.rs:3: `fleet` (layer 3) reaches up to `scenario` (layer 4)",
            "import circle: fleet -> scenario -> fleet"
        ]
    );
}

#[test]
fn grouped_imports_super_paths_and_exported_macros_are_read() {
    let files = [
        file("source.rs", "#[macro_export]\nmacro_rules! from_str { () => { $crate::scenario::x() } }\n"),
        file("pki/mod.rs", "use crate::{\n    source::Source,\n    fleet::{A, B},\n};\n"),
        file("pki/build.rs", "use super::super::scenario::Run;\n"),
        file("chain.rs", "crate::from_str!();\n"),
        file("fleet.rs", ""),
        file("scenario/mod.rs", ""),
    ];
    assert_eq!(
        check(&files, &layers()),
        [
            "src/pki/mod.rs:3: `pki` (layer 2) reaches up to `fleet` (layer 3)",
            "src/pki/build.rs:1: `pki` (layer 2) reaches up to `scenario` (layer 4)",
        ]
    );
}

#[test]
fn paths_in_comments_and_strings_are_not_imports() {
    let files = [
        file("source.rs", ""),
        file(
            "pki/mod.rs",
            "// crate::scenario\n/* crate::scenario */\nconst A: &str = \"crate::scenario\";\n\
             const B: &str = r#\"crate::scenario\"#;\nfn f<'a>(c: char) { let _ = '\"'; }\nfn scenario() {}\n",
        ),
        file("scenario/mod.rs", ""),
    ];
    assert_eq!(check(&files, &layers()), Vec::<String>::new());
}

#[test]
fn a_circle_within_one_layer_and_a_module_in_no_layer_are_reported() {
    let files =
        [file("pki/mod.rs", "use crate::chain::x;\n"), file("chain.rs", "use crate::pki::y;\n"), file("stray.rs", "")];
    assert_eq!(
        check(&files, &layers()),
        ["module `stray` is in no layer: add it to ARCHITECTURE.md's list", "import circle: chain -> pki -> chain"]
    );
}

/// The calls that open a connection, which only `net.rs` may make.
const DIAL_CALLS: [&str; 3] = ["TcpStream::connect", "connect_timeout", "TcpSocket::"];

/// Every dial in `files` (path, text) outside `net.rs`, as `path:line: call`.
fn dials_outside_net(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| !p.ends_with("harness/src/net.rs")) {
        let code = code_only(text);
        for call in DIAL_CALLS {
            for (offset, _) in code.match_indices(call) {
                let line = code[..offset].bytes().filter(|&b| b == b'\n').count() + 1;
                found.push(format!("{path}:{line}: {call}"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_connection_the_harness_and_xtask_open_goes_through_net_connect() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["harness/src", "xtask/src"] {
        let mut in_dir = Vec::new();
        source_files(&root.join(dir), &root.join(dir), &mut in_dir);
        files.extend(in_dir.into_iter().map(|(path, text)| (format!("{dir}/{path}"), text)));
    }
    let found = dials_outside_net(&files);
    assert!(
        found.is_empty(),
        "connections opened outside harness::net::connect (which checks the loopback invariant):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_planted_connect_outside_net_is_found_and_comments_are_not() {
    let files = [
        file("harness/src/net.rs", "fn connect() { TcpStream::connect_timeout(&a, t) }\n"),
        file(
            "xtask/src/lab.rs",
            "// TcpStream::connect is not used here\nfn f() {\n    TcpStream::connect(addr);\n}\n",
        ),
    ];
    assert_eq!(dials_outside_net(&files), ["xtask/src/lab.rs:3: TcpStream::connect"]);
}
