//! lars-reporter run as a Linux service: readiness and stop told to systemd, SIGHUP and
//! SIGUSR1 answered without a restart, and `--check-config` naming the statistics file.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/process.rs"]
mod process;

use std::net::TcpStream;

use process::{check_lifecycle, config_line, config_origin, run_to_exit, scratch, status_addr};

const EXE: &str = env!("CARGO_BIN_EXE_lars-reporter");

#[test]
fn it_tells_systemd_when_it_serves_and_survives_sighup_and_sigusr1() {
    let dir = scratch("reporter-service");
    let stats = dir.join("stats.txt");
    let args = ["--stats-file", stats.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let log = check_lifecycle(EXE, &args, &dir, |status| {
        TcpStream::connect(status_addr(status)).expect("it accepts connections once it is ready");
    });
    assert!(log.contains("counters: "), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_names_the_statistics_file_and_its_origin() {
    let dir = scratch("reporter-check-config");
    let conf = dir.join("lars-reporter.conf");
    std::fs::write(
        &conf,
        "[reporter]\nstats_file = /var/lib/lars-reporter/stats.txt\n[repoter]\ndb_thread_cnt = 3\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let out = run_to_exit(EXE, &["--config", conf, "--check-config"], &[], 0);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let line = config_line(stdout, "reporter", "stats_file");
    assert!(line.starts_with("stats_file = /var/lib/lars-reporter/stats.txt"), "{stdout}");
    assert_eq!(config_origin(stdout, "reporter", "stats_file"), format!("{conf}:2"));
    assert!(
        stderr.contains(&format!(
            "{conf}:3: unknown section [repoter] (did you mean [reporter]?): its keys are ignored"
        )),
        "the original's misspelt section did nothing there either: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
