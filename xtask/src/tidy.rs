//! Tidy checks, run as ordinary tests: repository rules that the compiler cannot see.

use std::fs;
use std::path::{Path, PathBuf};

use lars_core::wire::{Encode, Message, MsgId};

fn root() -> PathBuf {
    super::root()
}

/// Every `.rs` file of the repository outside `target/`.
fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root(), &mut files);
    assert!(files.len() > 10, "found only {} Rust files under {}", files.len(), root().display());
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<_> = rust_files()
        .into_iter()
        .filter(|path| !read(path).starts_with("//!"))
        .map(|path| path.strip_prefix(root()).unwrap_or(&path).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files that do not open with a `//!` line saying what they are: {missing:?}");
}

/// The daemons log through `lars_std::logger` (levels, formats, journald, rate limits); an
/// `eprintln!` in lars-std or a daemon's `main.rs` would bypass all of it. Only
/// `lars-std/src/daemon.rs` writes to stderr itself, for errors before the logger starts.
#[test]
fn the_daemons_log_through_the_logger() {
    let dirs = [
        "lars-std/src",
        "bins/lars-dns/src",
        "bins/lars-reporter/src",
        "bins/lars-agent/src",
        "bins/lars-web/src",
    ]
    .map(|dir| root().join(dir));
    let stray: Vec<String> = rust_files()
        .into_iter()
        .filter(|path| {
            dirs.iter().any(|dir| path.starts_with(dir)) && !path.ends_with("lars-std/src/daemon.rs")
        })
        .flat_map(|path| {
            read(&path)
                .lines()
                .enumerate()
                .filter(|(_, line)| line.split("//").next().unwrap_or_default().contains("eprintln!("))
                .map(|(index, _)| {
                    format!("{}:{}", path.strip_prefix(root()).unwrap_or(&path).display(), index + 1)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(stray.is_empty(), "write through the `log` macros, not eprintln!: {stray:?}");
}

/// The only files with `unsafe` code, in every crate of the repository, and why each needs it.
/// The compiler enforces it (the workspace denies `unsafe_code`; each of these allows it, on the
/// module or the items); this text check also covers what no build compiles (the fuzz
/// workspace, code behind features and targets) and keeps the list and ARCHITECTURE.md in step.
/// Adding a file here is a reviewed decision.
const UNSAFE_FILES: [(&str, &str); 6] = [
    (
        "lars-core/src/pool.rs",
        "the buffer pool hands out blocks of storage it owns (safety argument in its docs)",
    ),
    (
        "lars-std/src/reactor/registered.rs",
        "polling's `add` needs the caller to deregister the fd before closing it",
    ),
    ("bins/lars-c/src/raw.rs", "the C ABI turns the caller's pointers into references"),
    ("lars-embedded/firmware/src/lan9118.rs", "the Ethernet controller's memory-mapped registers"),
    (
        "lars-embedded/firmware/src/main.rs",
        "the boot-time statics, the controller at its address, the HardFault handler",
    ),
    (
        "tests/tests/zero_alloc.rs",
        "a counting global allocator, to prove the agent's steady state allocates nothing",
    ),
];

/// Files whose only unsafe code is exported symbols: `#[unsafe(no_mangle)]`, which the compiler
/// counts as unsafe code, so they allow the lint; anything else unsafe in them fails the test.
const EXPORTING_FILES: [(&str, &str); 2] = [
    ("bins/lars-c/src/lib.rs", "the C library: every function it exports, each allowing the lint"),
    ("lars-embedded/nostd-check/src/lib.rs", "its two entry points, kept by the no_std build"),
];

/// Whether `code`, a line without its comment, has unsafe code: the keyword `unsafe` before a
/// block, a function, an impl, a trait, an extern block or function, or an attribute
/// (`#[unsafe(no_mangle)]`), however spaced; or an exception to the `unsafe_code` lint.
fn has_unsafe_code(code: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    code.contains("(unsafe_code)")
        || code.match_indices("unsafe").any(|(at, keyword)| {
            let (before, after) = (&code[..at], &code[at + keyword.len()..]);
            let next = after.trim_start();
            !before.ends_with(word)
                && !after.starts_with(word)
                && (next.is_empty()
                    || next.starts_with(['{', '('])
                    || ["fn", "impl", "trait", "extern"]
                        .iter()
                        .any(|item| next.starts_with(item) && !next[item.len()..].starts_with(word)))
        })
}

/// `line` without its comments (`//` to the end, `/* ... */` within the line), string and
/// character literals kept as they are, so that `"http://x"; unsafe { .. }` is still seen.
fn without_comments(line: &str) -> String {
    let mut code = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                code.push(c);
                code.extend(chars.next());
            }
            (Some(q), _) if c == q => {
                quote = None;
                code.push(c);
            }
            (Some(_), _) => code.push(c),
            // A quote as a character literal opens no string.
            (None, '\'') if line_rest_starts(&chars, "\"'") => {
                code.push(c);
                code.extend(chars.by_ref().take(2));
            }
            (None, '"') => {
                quote = Some('"');
                code.push(c);
            }
            (None, '/') if chars.peek() == Some(&'/') => break,
            (None, '/') if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                code.push(' ');
            }
            (None, _) => code.push(c),
        }
    }
    code
}

fn line_rest_starts(chars: &std::iter::Peekable<std::str::Chars<'_>>, prefix: &str) -> bool {
    chars.clone().take(prefix.chars().count()).eq(prefix.chars())
}

/// Lines with `unsafe` code (see [`has_unsafe_code`]) in `path`; with `but_exports`, other
/// than `#[unsafe(no_mangle)]` and the lint's exceptions.
fn unsafe_lines(path: &Path, but_exports: bool) -> Vec<String> {
    let export = |code: &str| code == "#[unsafe(no_mangle)]" || code == "#[allow(unsafe_code)]";
    read(path)
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = without_comments(line);
            let code = code.trim();
            has_unsafe_code(code) && !(but_exports && export(code))
        })
        .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
        .collect()
}

#[test]
fn comments_are_cut_but_not_strings() {
    for (line, code) in [
        ("let u = \"http://x\"; unsafe { f() } // why", "let u = \"http://x\"; unsafe { f() } "),
        ("unsafe /* why */ { f() }", "unsafe   { f() }"),
        ("// unsafe { f() }", ""),
        ("let q = '\"'; unsafe { f() }", "let q = '\"'; unsafe { f() }"),
        ("let s = \"a \\\" b\"; // c", "let s = \"a \\\" b\"; "),
    ] {
        assert_eq!(without_comments(line), code, "{line}");
    }
    assert!(has_unsafe_code(without_comments("let u = \"http://x\"; unsafe { f() }").trim()));
    assert!(has_unsafe_code(without_comments("unsafe /* why */ { f() }").trim()));
}

#[test]
fn the_unsafe_code_pattern_sees_every_form() {
    for line in [
        "unsafe { x }",
        "let y = unsafe{ x };",
        "pub unsafe fn f()",
        "unsafe impl Sync for T {}",
        "unsafe impl<T> Send for T {}",
        "pub unsafe trait Pod {}",
        "unsafe extern \"C\" {",
        "pub unsafe extern \"C\" fn f()",
        "#[unsafe(no_mangle)]",
        "#[unsafe (export_name = \"f\")]",
        "let z = unsafe",
        "#![allow(unsafe_code)]",
        "#[expect(unsafe_code)]",
    ] {
        assert!(has_unsafe_code(line), "missed: {line}");
    }
    for line in [
        "unsafe_op_in_unsafe_fn = \"deny\"",
        "use core::cell::UnsafeCell;",
        "\"style-src 'unsafe-inline'\"",
        "let unsafety = 1;",
        "not_unsafe { }",
        "unsafe functions",
    ] {
        assert!(!has_unsafe_code(line), "not unsafe code: {line}");
    }
}

#[test]
fn unsafe_code_lives_only_in_the_listed_files() {
    let allowed: Vec<PathBuf> = UNSAFE_FILES.iter().map(|(file, _)| root().join(file)).collect();
    let exporting: Vec<PathBuf> = EXPORTING_FILES.iter().map(|(file, _)| root().join(file)).collect();
    // This file names the patterns it looks for.
    let this_file = root().join("xtask/src/tidy.rs");
    let offenders: Vec<String> = rust_files()
        .iter()
        .filter(|path| !allowed.contains(path) && **path != this_file)
        .flat_map(|path| unsafe_lines(path, exporting.contains(path)))
        .collect();
    assert!(
        offenders.is_empty(),
        "unsafe outside the files ARCHITECTURE.md invariant 5 lists: {offenders:#?}"
    );
    for path in &allowed {
        assert!(
            !unsafe_lines(path, false).is_empty(),
            "{} has no unsafe left: take it off the list",
            path.display()
        );
    }
    for path in &exporting {
        assert!(
            read(path).contains("#[unsafe(no_mangle)]"),
            "{} exports nothing: take it off the list",
            path.display()
        );
    }
    // The compiler's half: the workspace denies the lint and every member crate takes it.
    assert!(read(&root().join("Cargo.toml")).contains("unsafe_code = \"deny\""));
    let manifests = rust_files()
        .into_iter()
        .filter(|path| path.ends_with("src/lib.rs") || path.ends_with("src/main.rs"))
        .filter_map(|path| path.parent().and_then(Path::parent).map(|krate| krate.join("Cargo.toml")))
        .filter(|manifest| manifest.exists() && !manifest.starts_with(root().join("fuzz")));
    for manifest in manifests {
        assert!(
            read(&manifest).contains("[lints]\nworkspace = true"),
            "{} does not take the workspace's lints (`[lints] workspace = true`)",
            manifest.display()
        );
    }
    let architecture = read(&root().join("ARCHITECTURE.md"));
    for (file, _) in UNSAFE_FILES.iter().chain(&EXPORTING_FILES) {
        assert!(
            architecture.contains(&format!("`{file}`")),
            "ARCHITECTURE.md invariant 5 does not name {file}"
        );
    }
}

#[test]
fn client_library_files_open_with_a_doc_comment() {
    // The rule for `.rs` files, for the other languages under bins/.
    let mut files = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != "__pycache__" {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| ["c", "h", "cpp", "hpp", "py", "java"].iter().any(|x| e == *x))
            {
                out.push(path);
            }
        }
    }
    for language in ["lars-c", "lars-cpp", "lars-python", "lars-java"] {
        walk(&root().join("bins").join(language), &mut files);
    }
    assert!(files.len() >= 20, "found only {} client library files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = read(path);
            !["/*", "//", "\"\"\""].iter().any(|opening| text.starts_with(opening))
        })
        .map(|path| path.strip_prefix(root()).unwrap_or(path).display().to_string())
        .collect();
    assert!(missing.is_empty(), "client files that do not open with a doc comment: {missing:?}");
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("`{b}` is not a hex byte")))
        .collect()
}

#[test]
fn protocol_doc_vectors_decode_and_reencode_exactly() {
    let doc = read(&root().join("docs/PROTOCOL.md"));
    let mut covered = Vec::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("vector ") else { continue };
        let (name, bytes) = rest.split_once(':').unwrap_or_else(|| panic!("malformed vector line `{line}`"));
        let msgid = *MsgId::ALL
            .iter()
            .find(|id| format!("{id:?}") == name)
            .unwrap_or_else(|| panic!("vector for unknown message `{name}`"));
        let body = hex(bytes);
        let message =
            Message::parse(msgid, &body).unwrap_or_else(|e| panic!("vector `{line}` does not decode: {e}"));
        let mut out = vec![0; message.buffer_len()];
        message.emit(&mut out).unwrap();
        assert_eq!(out, body, "vector `{line}` does not re-encode to itself");
        covered.push(msgid);
    }
    let missing: Vec<_> = MsgId::ALL.iter().filter(|id| !covered.contains(id)).collect();
    assert!(missing.is_empty(), "docs/PROTOCOL.md has no vector for {missing:?}");
}

/// The handshake vector in `docs/PROTOCOL.md` §5: the challenge's proof is the server's HMAC
/// over the hello and the challenge, and the proof the client's, under the secret named there.
#[test]
fn protocol_doc_handshake_vector_is_the_hmac_it_says() {
    use lars_core::auth::{Initiator, Responder, Secret};
    use lars_core::wire::Decode;
    use lars_core::wire::native::{AuthChallenge, AuthHello, AuthProof, Role};
    let doc = read(&root().join("docs/PROTOCOL.md"));
    let field = |prefix: &str| {
        doc.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no `{prefix}` line"))
            .trim()
            .to_string()
    };
    let secret = Secret::new(field("auth-secret:").as_bytes()).unwrap();
    let hello = AuthHello::parse(&hex(&field("vector AuthHello:"))).unwrap();
    let challenge = AuthChallenge::parse(&hex(&field("vector AuthChallenge:"))).unwrap();
    let proof = AuthProof::parse(&hex(&field("vector AuthProof:"))).unwrap();
    let client = Initiator::new(hello.role, hello.node, hello.max_body, hello.nonce, Role::Dns);
    assert_eq!(client.handle_challenge(&secret, &challenge), Ok(proof), "the client's proof");
    let mut server = Responder::new();
    let answer = server.handle_hello(
        Some(&secret),
        &hello,
        challenge.role,
        challenge.node,
        challenge.max_body,
        challenge.nonce,
    );
    assert_eq!(answer, Ok(challenge), "the server's challenge and proof");
    assert_eq!(server.handle_proof(Some(&secret), &proof), Ok(hello.node));
}

#[test]
fn protocol_doc_lists_every_msgid() {
    let doc = read(&root().join("docs/PROTOCOL.md"));
    for id in MsgId::ALL {
        let number = if id.is_lars() { id.as_u32().to_string() } else { format!("{:#x}", id.as_u32()) };
        let row = format!("| {number} | {id:?} |");
        assert!(doc.contains(&row), "docs/PROTOCOL.md's msgid table lacks the row `{row}`");
    }
}

#[test]
fn architecture_doc_maps_every_crate() {
    let doc = read(&root().join("ARCHITECTURE.md"));
    for krate in ["lars-core", "lars-std", "lars-embedded", "bins", "xtask", "tests"] {
        assert!(doc.contains(&format!("`{krate}/`")), "ARCHITECTURE.md's code map lacks `{krate}/`");
    }
}

/// The crates in `package`'s normal (non-dev, non-build) dependency tree, itself included, each
/// once: what `cargo tree -e normal` lists.
fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["tree", "-q", "-p", package, "-e", "normal", "--prefix", "none"])
        .current_dir(root())
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    let mut crates: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_string())
        .filter(|line| !line.is_empty())
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

/// DESIGN §12: the agent and a program that only wants the client library build without MySQL,
/// in at most 20 crates. A new dependency has to fit in what is left.
#[test]
fn the_agent_and_the_client_library_stay_lean() {
    const MOST: usize = 20;
    for package in ["lars-agent", "lars-std"] {
        let crates = normal_dependencies(package);
        assert!(
            crates.len() <= MOST,
            "{package} pulls {} crates, more than {MOST}:\n{}",
            crates.len(),
            crates.join("\n")
        );
        assert!(
            !crates.iter().any(|c| c.starts_with("mysql ")),
            "{package} pulls MySQL: the `mysql` feature of lars-std must stay off for it"
        );
    }
}

/// A source file the next engineer can hold in their head: none tracked is over 800 lines
/// (STYLE's module sizes; past that a file holds more than one job and splits along its seams).
#[test]
fn no_source_file_is_over_800_lines() {
    const MOST: usize = 800;
    const SOURCE: [&str; 11] = ["rs", "c", "h", "cpp", "hpp", "py", "java", "js", "html", "css", "sh"];
    let output = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("run git ls-files");
    assert!(output.status.success(), "git ls-files: {}", String::from_utf8_lossy(&output.stderr));
    let tracked: Vec<PathBuf> = output
        .stdout
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        .filter(|path| path.extension().is_some_and(|e| SOURCE.iter().any(|x| e == *x)))
        .collect();
    assert!(tracked.len() > 100, "found only {} tracked source files", tracked.len());
    let long: Vec<String> = tracked
        .iter()
        .filter_map(|path| {
            let lines = read(&root().join(path)).lines().count();
            (lines > MOST).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "source files over {MOST} lines, to split along their seams: {long:#?}");
}
