//! The client libraries for other languages (`bins/lars-c`, `bins/lars-cpp`, `bins/lars-python`,
//! `bins/lars-java`): their gates in `cargo xtask test` and `cargo xtask bench clients`.
//!
//! Each language's test program runs against real daemons on loopback (lars-dns on a route
//! file, lars-reporter on a statistics file, lars-agent, all on free ports) and gets them
//! through the environment: `LARS_TEST_AGENT` (the agent's API endpoints), `LARS_TEST_DEAD_AGENT`
//! (an address with nothing behind it), `LARS_TEST_ROUTES` (the route file, which the program
//! edits to add its route) and `LARS_TEST_MODID` (its own modid). The program checks its calls
//! and exits 0; this side then checks that its reports reached lars-reporter, and kills a
//! program that hangs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::command::build_release;
use super::demo::{Cluster, RunFiles, build_binaries, free_udp_port};
use super::{cargo, root};

/// A test program that runs longer than this hangs: the calls it makes all have timeouts.
const HANG: Duration = Duration::from_secs(120);

/// The `cargo xtask test` steps, in order.
pub(crate) const TEST_STEPS: [(&str, super::InProcessStep); 5] = [
    ("C header matches the code (cbindgen)", header_matches),
    ("C client against the daemons", || run_language(&C)),
    ("C++ client against the daemons", || run_language(&CPP)),
    ("Python client against the daemons", || run_language(&PYTHON)),
    ("Java client against the daemons", || run_language(&JAVA)),
];

/// One language's test: how to build it and how to run it.
pub(crate) struct Language {
    name: &'static str,
    /// The modid its routes and reports use, distinct per language.
    modid: i32,
    /// The cmdids it adds routes for and reports on (the Python test: one per backend).
    cmdids: &'static [i32],
    /// Builds the test program into `out` (a scratch folder); returns the command that runs it.
    build: fn(out: &Path) -> Result<Command, String>,
}

const C: Language = Language { name: "c", modid: 7101, cmdids: &[1], build: build_c };
const CPP: Language = Language { name: "cpp", modid: 7102, cmdids: &[1], build: build_cpp };
const PYTHON: Language = Language { name: "python", modid: 7103, cmdids: &[1, 2], build: build_python };
const JAVA: Language = Language { name: "java", modid: 7104, cmdids: &[1], build: build_java };

fn run_status(what: &str, command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{what}: could not start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what}: {status}")) }
}

/// The C library, debug build: `target/debug/liblarsclient.{so,a}`.
fn build_library(release: bool) -> Result<PathBuf, String> {
    let mut args = vec!["build", "-q", "-p", "lars-c"];
    if release {
        args.push("--release");
    }
    run_status("build lars-c", &mut cargo(&args))?;
    Ok(root().join("target").join(if release { "release" } else { "debug" }))
}

/// Generates the header into `target/` and compares it with the committed one (cbindgen's own
/// `--verify` rewrites the file it checks).
fn header_matches() -> Result<(), String> {
    let committed = root().join("bins/lars-c/include/lars.h");
    let fresh = root().join("target/clients/lars.h");
    std::fs::create_dir_all(root().join("target/clients")).map_err(|e| format!("target/clients: {e}"))?;
    let mut command = Command::new("cbindgen");
    command
        .current_dir(root())
        .args(["--config", "bins/lars-c/cbindgen.toml", "--crate", "lars-c", "--output"])
        .arg(&fresh);
    run_status("cbindgen (install it with `cargo install cbindgen --locked`)", &mut command)?;
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    if read(&committed)? == read(&fresh)? {
        Ok(())
    } else {
        Err(format!(
            "bins/lars-c/include/lars.h does not match the code (see {}); regenerate it with the command in \
             bins/lars-c/cbindgen.toml",
            fresh.display()
        ))
    }
}

fn compiler(name: &str, lib: &Path) -> Command {
    let mut command = Command::new(name);
    command.current_dir(root()).arg("-I").arg("bins/lars-c/include").arg("-L").arg(lib);
    command
}

fn build_c(out: &Path) -> Result<Command, String> {
    let lib = build_library(false)?;
    let exe = out.join("c_client_test");
    let mut cc = compiler("cc", &lib);
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "bins/lars-c/tests/client_test.c", "-o"])
        .arg(&exe)
        .args(["-llarsclient", "-lpthread"])
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    run_status("cc client_test.c", &mut cc)?;
    Ok(Command::new(exe))
}

/// The C++ test links the static library, so both library kinds are exercised.
fn build_cpp(out: &Path) -> Result<Command, String> {
    let lib = build_library(false)?;
    let exe = out.join("cpp_client_test");
    let mut cxx = compiler("c++", &lib);
    cxx.args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-I", "bins/lars-cpp/include"])
        .args(["bins/lars-cpp/tests/client_test.cpp", "-o"])
        .arg(&exe)
        .arg(lib.join("liblarsclient.a"))
        .args(["-lpthread", "-ldl", "-lm"]);
    run_status("c++ client_test.cpp", &mut cxx)?;
    Ok(Command::new(exe))
}

/// Installs the package with pip into a fresh virtual environment, as a user would, with the
/// C library bundled in (`LARS_BUNDLE_LIBRARY`), and runs its tests there on both backends.
fn build_python(out: &Path) -> Result<Command, String> {
    let lib = build_library(false)?;
    let venv = out.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    run_status("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let python = venv.join("bin/python");
    run_status(
        "pip install bins/lars-python",
        Command::new(&python)
            .current_dir(root())
            .args(["-m", "pip", "install", "-q", "--no-index", "bins/lars-python"])
            .env("LARS_BUNDLE_LIBRARY", lib.join("liblarsclient.so")),
    )?;
    // The tests run from a copy: from bins/lars-python, `import lars` would find the source
    // rather than the installed package.
    let tests = out.join("tests");
    let _ = std::fs::remove_dir_all(&tests);
    std::fs::create_dir_all(&tests).map_err(|e| format!("{}: {e}", tests.display()))?;
    for name in ["__init__.py", "test_wire.py", "test_client.py"] {
        let from = root().join("bins/lars-python/tests").join(name);
        std::fs::copy(&from, tests.join(name)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let mut command = Command::new(python);
    command
        .current_dir(out)
        .args(["-m", "unittest", "-v", "tests.test_wire", "tests.test_client"])
        .env_remove("LARS_LIBRARY");
    Ok(command)
}

fn build_java(out: &Path) -> Result<Command, String> {
    // The Javadoc is the Java package's documentation: it must build without a warning.
    run_status(
        "javadoc -Xdoclint:all -Werror",
        Command::new("javadoc")
            .args(["-Xdoclint:all", "-Werror", "-quiet", "-d"])
            .arg(out.join("javadoc"))
            .arg("-sourcepath")
            .arg(root().join("bins/lars-java/src"))
            .arg("lars"),
    )?;
    let classes = out.join("classes");
    let _ = std::fs::remove_dir_all(&classes);
    let jar = jar_java(&classes, &out.join("lars.jar"))?;
    let test_classes = out.join("test-classes");
    let _ = std::fs::remove_dir_all(&test_classes);
    let sources = java_sources(&root().join("bins/lars-java/test"))?;
    run_status(
        "javac tests",
        Command::new("javac")
            .args(["--release", "17", "-Werror", "-Xlint:all", "-d"])
            .arg(&test_classes)
            .arg("-cp")
            .arg(&jar)
            .args(&sources),
    )?;
    let mut command = Command::new("java");
    command.arg("-cp").arg(format!("{}:{}", jar.display(), test_classes.display())).arg("lars.ClientTest");
    Ok(command)
}

/// Compiles `bins/lars-java/src` and packs `lars.jar` at `jar`.
fn jar_java(classes: &Path, jar: &Path) -> Result<PathBuf, String> {
    let sources = java_sources(&root().join("bins/lars-java/src"))?;
    run_status(
        "javac lars",
        Command::new("javac")
            .args(["--release", "17", "-Werror", "-Xlint:all", "-d"])
            .arg(classes)
            .args(&sources),
    )?;
    run_status(
        "jar",
        Command::new("jar").arg("--create").arg("--file").arg(jar).arg("-C").arg(classes).arg("."),
    )?;
    Ok(jar.to_path_buf())
}

fn java_sources(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "java") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut sources = Vec::new();
    walk(dir, &mut sources).map_err(|e| format!("{}: {e}", dir.display()))?;
    sources.sort();
    Ok(sources)
}

/// Hosts of `(modid, cmdid)` whose row in the statistics file has at least one success. The
/// file is a log whose last line of a (route, host, caller) wins.
fn reported_rows(stats: &Path, modid: i32, cmdid: i32) -> usize {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let mut rows = std::collections::BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 8 && fields[0] == modid.to_string() && fields[1] == cmdid.to_string() {
            let succ = fields[4].parse::<u64>().unwrap_or(0);
            rows.insert((fields[2].to_string(), fields[3].to_string()), succ);
        }
    }
    rows.values().filter(|&&succ| succ > 0).count()
}

fn run_language(language: &Language) -> Result<(), String> {
    build_binaries(&["lars-dns", "lars-reporter", "lars-agent"])?;
    let files = RunFiles::fresh(&format!("clients/{}", language.name))?;
    std::fs::write(&files.routes, "# routes for the client tests\n")
        .map_err(|e| format!("{}: {e}", files.routes.display()))?;
    let mut command = (language.build)(&files.dir)?;
    let cluster = Cluster::start(
        &root().join("target/debug"),
        &["--routes", &files.routes.display().to_string()],
        &["--stats-file", &files.stats.display().to_string()],
        true,
    )?;
    let dead = format!("127.0.0.1:{}", free_udp_port()?);
    command
        .env_remove("LD_LIBRARY_PATH") // the library is the one the program was linked with
        .env("LARS_TEST_AGENT", &cluster.api)
        .env("LARS_TEST_DEAD_AGENT", &dead)
        .env("LARS_TEST_ROUTES", &files.routes)
        .env("LARS_TEST_MODID", language.modid.to_string())
        .stdin(Stdio::null());
    let mut child = command.spawn().map_err(|e| format!("start the {} test: {e}", language.name))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the {} test hung for {} s and was killed", language.name, HANG.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(format!("the {} test failed: {status}", language.name));
    }
    // The agent sends its statistics to lars-reporter periodically; allow a few periods.
    let deadline = Instant::now() + Duration::from_secs(15);
    while language.cmdids.iter().any(|&cmdid| reported_rows(&files.stats, language.modid, cmdid) < 2) {
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(&files.stats).unwrap_or_default();
            return Err(format!(
                "lars-reporter has no successes for both hosts of modid {} cmdids {:?} from the {} test:\n{text}",
                language.modid, language.cmdids, language.name
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{}: reports for both hosts reached lars-reporter", language.name);
    drop(cluster);
    Ok(())
}

/// `cargo xtask test-clients [LANGUAGE...]`: the header check and the named languages' tests
/// (all by default), with a summary.
pub(crate) fn test(only: &[String]) -> Result<(), String> {
    let mut failed = Vec::new();
    for (name, step) in TEST_STEPS {
        let first_word = name.split_whitespace().next().unwrap_or_default().to_lowercase();
        let language = match first_word.as_str() {
            "c++" => "cpp",
            other => other,
        };
        if !only.is_empty() && !only.iter().any(|o| o == language) {
            continue;
        }
        println!("\n==> {name}");
        if let Err(e) = step() {
            eprintln!("FAILED: {e}");
            failed.push(name);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("failed: {}", failed.join("; "))) }
}

/// Seconds each benchmark mode runs (`LARS_BENCH_SECONDS` overrides).
const BENCH_SECONDS: &str = "3";
/// The original Lars C++ API, per call at 1 thread, measured on these machines (DESIGN.md §11).
const ORIGINAL_CPP_PER_CALL: f64 = 24_000.0;

/// `cargo xtask bench clients`: get_host + report pairs per second at one thread, per call and
/// leased, from Rust (`lars bench`), C, C++, Python (both backends) and Java, against release
/// daemons on a route file. Prints a table and writes `target/bench/clients.json`.
pub(crate) fn bench() -> Result<(), String> {
    println!("\n==> clients bench: release builds");
    build_release(&["lars-c"])?;
    let release = root().join("target/release");
    let files = RunFiles::fresh("clients/bench")?;
    let modid = 9001;
    let routes: String = (7001..=7003).map(|port| format!("{modid} 1 127.0.0.1:{port}\n")).collect();
    std::fs::write(&files.routes, routes).map_err(|e| format!("{}: {e}", files.routes.display()))?;
    let out = &files.dir;

    // The programs, built before the daemons start.
    let c_exe = out.join("c_bench");
    let mut cc = compiler("cc", &release);
    cc.args(["-std=c11", "-O2", "-Wall", "-Werror", "bins/lars-c/bench/bench.c", "-o"])
        .arg(&c_exe)
        .args(["-llarsclient", "-lpthread"])
        .arg(format!("-Wl,-rpath,{}", release.display()));
    run_status("cc bench.c", &mut cc)?;
    let cpp_exe = out.join("cpp_bench");
    let mut cxx = compiler("c++", &release);
    cxx.args([
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Werror",
        "-I",
        "bins/lars-cpp/include",
        "bins/lars-cpp/bench/bench.cpp",
    ])
    .arg("-o")
    .arg(&cpp_exe)
    .arg(release.join("liblarsclient.a"))
    .args(["-lpthread", "-ldl", "-lm"]);
    run_status("c++ bench.cpp", &mut cxx)?;
    let venv = out.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    run_status("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run_status(
        "pip install bins/lars-python",
        Command::new(venv.join("bin/python")).current_dir(root()).args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "bins/lars-python",
        ]),
    )?;
    let classes = out.join("classes");
    let _ = std::fs::remove_dir_all(&classes);
    let jar = jar_java(&classes, &out.join("lars.jar"))?;
    let bench_classes = out.join("bench-classes");
    let _ = std::fs::remove_dir_all(&bench_classes);
    run_status(
        "javac bench",
        Command::new("javac")
            .args(["--release", "17", "-d"])
            .arg(&bench_classes)
            .arg("-cp")
            .arg(&jar)
            .args(java_sources(&root().join("bins/lars-java/bench"))?),
    )?;

    let cluster = Cluster::start(
        &release,
        &["--routes", &files.routes.display().to_string()],
        &["--stats-file", &files.stats.display().to_string()],
        true,
    )?;
    let seconds = std::env::var("LARS_BENCH_SECONDS").unwrap_or_else(|_| BENCH_SECONDS.into());
    let mut rows: Vec<(String, String, f64)> = Vec::new();

    for lease in [false, true] {
        let json = out.join(format!("rust-{lease}.json"));
        let mut args =
            vec!["bench", "--threads", "1", "--seconds", &seconds, "--modid-base", "9001", "--cmdid", "1"];
        args.extend(["--agent", &cluster.api, "--json"]);
        let json_text = json.display().to_string();
        args.push(&json_text);
        if lease {
            args.push("--lease");
        }
        run_status("lars bench", Command::new(release.join("lars")).args(&args).stdout(Stdio::null()))?;
        let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
        let rate = text
            .split("\"pairs_per_sec\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|n| n.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("no pairs_per_sec in {text}"))?;
        rows.push(("Rust (lars_std::client)".into(), if lease { "leased" } else { "per-call" }.into(), rate));
    }
    let mut java = Command::new("java");
    java.arg("-cp").arg(format!("{}:{}", jar.display(), bench_classes.display())).arg("lars.Bench");
    let mut python = Command::new(venv.join("bin/python"));
    python
        .arg(root().join("bins/lars-python/bench/bench.py"))
        .env("LARS_LIBRARY", release.join("liblarsclient.so"));
    let programs: [(&str, Command); 4] = [
        ("C++ (lars.hpp)", Command::new(&cpp_exe)),
        ("C (liblarsclient)", Command::new(&c_exe)),
        ("Python", python),
        ("Java (pure)", java),
    ];
    for (language, mut command) in programs {
        println!("==> {language}");
        // `cargo run` puts target/debug on LD_LIBRARY_PATH, which would win over the programs'
        // rpath and load the debug liblarsclient.
        let output = command
            .env_remove("LD_LIBRARY_PATH")
            .env("LARS_BENCH_AGENT", &cluster.api)
            .env("LARS_BENCH_MODID", modid.to_string())
            .env("LARS_BENCH_SECONDS", &seconds)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{language}: {e}"))?;
        if !output.status.success() {
            return Err(format!("{language} bench failed: {}", output.status));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((mode, rate)) = line.split_once(' ') else { continue };
            let rate: f64 = rate.trim().parse().map_err(|_| format!("{language}: bad line `{line}`"))?;
            let (label, mode) = match mode.split_once('-') {
                Some((backend, mode)) if language == "Python" && matches!(backend, "native" | "pure") => {
                    (format!("Python ({backend})"), mode.to_string())
                }
                _ => (language.to_string(), mode.to_string()),
            };
            rows.push((label, mode, rate));
        }
    }
    drop(cluster);

    let rust =
        |mode: &str| rows.iter().find(|r| r.0.starts_with("Rust") && r.1 == mode).map_or(f64::NAN, |r| r.2);
    println!(
        "\nget_host + report pairs per second, 1 thread, release daemons on a route file ({seconds} s each)"
    );
    println!("{:<26} {:>9} {:>14} {:>10}", "client", "mode", "pairs/s", "vs Rust");
    for (language, mode, rate) in &rows {
        println!("{language:<26} {mode:>9} {rate:>14.0} {:>9.2}x", rate / rust(mode));
    }
    println!(
        "{:<26} {:>9} {:>14.0} {:>9.2}x   (measured here in wave 1, on MariaDB)",
        "original Lars C++ API",
        "per-call",
        ORIGINAL_CPP_PER_CALL,
        ORIGINAL_CPP_PER_CALL / rust("per-call")
    );
    let json: Vec<String> = rows
        .iter()
        .map(|(language, mode, rate)| {
            format!("{{\"client\": \"{language}\", \"mode\": \"{mode}\", \"pairs_per_sec\": {rate:.0}}}")
        })
        .collect();
    let path = root().join("target/bench/clients.json");
    std::fs::write(&path, format!("[\n  {}\n]\n", json.join(",\n  ")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("figures in {}", path.display());
    Ok(())
}
