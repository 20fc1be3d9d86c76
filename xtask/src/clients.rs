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

use super::demo::{Cluster, RunFiles, build_binaries, free_port};
use super::{cargo, root};

/// A test program that runs longer than this hangs: the calls it makes all have timeouts.
const HANG: Duration = Duration::from_secs(120);

/// The `cargo xtask test` steps, in order.
pub(crate) const TEST_STEPS: [(&str, super::InProcessStep); 5] = [
    ("C header matches the code (cbindgen --verify)", header_matches),
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

fn header_matches() -> Result<(), String> {
    let mut command = Command::new("cbindgen");
    command.current_dir(root()).args([
        "--config",
        "bins/lars-c/cbindgen.toml",
        "--crate",
        "lars-c",
        "--output",
        "bins/lars-c/include/lars.h",
        "--verify",
    ]);
    run_status("cbindgen --verify (install it with `cargo install cbindgen --locked`)", &mut command)
        .map_err(|e| format!("{e}; regenerate with the command in bins/lars-c/cbindgen.toml"))
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

/// Installs the package with pip into a fresh virtual environment, as a user would, and runs
/// its tests there twice: on the C library, and on the pure-Python fallback.
fn build_python(out: &Path) -> Result<Command, String> {
    let lib = build_library(false)?;
    let venv = out.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    run_status("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let python = venv.join("bin/python");
    run_status(
        "pip install bins/lars-python",
        Command::new(&python).current_dir(root()).args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--no-index",
            "bins/lars-python",
        ]),
    )?;
    let mut command = Command::new(python);
    command
        .current_dir(root().join("bins/lars-python"))
        .args(["-m", "unittest", "-v", "tests.test_wire", "tests.test_client"])
        .env("LARS_LIBRARY", lib.join("liblarsclient.so"));
    Ok(command)
}

fn build_java(out: &Path) -> Result<Command, String> {
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

/// Lines of the statistics file for `(modid, cmdid)` with at least one success.
fn reported_rows(stats: &Path, modid: i32, cmdid: i32) -> usize {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    text.lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.first() == Some(&modid.to_string().as_str())
                && fields.get(1) == Some(&cmdid.to_string().as_str())
                && fields.get(4).and_then(|s| s.parse::<u64>().ok()).is_some_and(|succ| succ > 0)
        })
        .count()
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
    let dead = format!("127.0.0.1:{}", free_port()?);
    command
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

/// `cargo xtask bench clients`.
pub(crate) fn bench() -> Result<(), String> {
    Err("not yet".into())
}
