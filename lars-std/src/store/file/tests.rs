//! Tests of the route file and the statistics file (`store/file.rs`).

use std::sync::Arc;

use super::*;

#[test]
fn parses_the_route_file_format() {
    let text = "# routes\n1001 1 127.0.0.1:9001\n1001 1 10.0.0.7:9001 3   # heavy\n\n1002 -7 [2001:db8::5]:80\n1001 1 127.0.0.1:9001\n";
    let table = RouteFile::parse(text, Path::new("routes.conf"), 9).unwrap();
    assert_eq!(table.version, 9);
    assert_eq!(table.routes.len(), 2);
    let hosts = table.hosts((1001, 1));
    assert_eq!(hosts.len(), 2, "duplicates count once");
    assert_eq!(hosts[1], WeightedHost { addr: "127.0.0.1:9001".parse().unwrap(), weight: 1 });
    assert_eq!(hosts[0].weight, 3);
    assert_eq!(table.hosts((1002, -7))[0].addr, "[2001:db8::5]:80".parse().unwrap());
    let again = RouteFile::parse(&RouteFile::render(&table), Path::new("x"), 9).unwrap();
    assert_eq!(again, table, "render and parse round-trip");
}

#[test]
fn errors_name_the_file_and_the_line() {
    let err =
        RouteFile::parse("1 1 127.0.0.1:1\n1 x 127.0.0.1:2\n", Path::new("/etc/lars/routes"), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid store contents: /etc/lars/routes:2: cmdid is not a 32-bit integer in `1 x 127.0.0.1:2`"
    );
    let err = RouteFile::parse("1 1 localhost:80\n", Path::new("r"), 0).unwrap_err();
    assert_eq!(err.to_string(), "invalid store contents: r:1: host is not ip:port in `1 1 localhost:80`");
    let err = RouteFile::parse("1 1\n", Path::new("r"), 0).unwrap_err();
    assert!(err.to_string().contains("r:1: expected `modid cmdid host:port [weight] [out]`"));
    assert!(matches!(RouteFile::new("/nonexistent/routes").load(), Err(StoreError::Unavailable(_))));
}

#[test]
fn a_non_utf8_byte_fails_its_line_only_outside_a_comment() {
    let text = b"1 1 127.0.0.1:1 # caf\xe9\n# \xff\xfe whole-line comment\n1 1 127.0.0.1:2\n";
    let table = RouteFile::parse_bytes(text, Path::new("r"), 0).unwrap();
    assert_eq!(table.hosts((1, 1)).len(), 2, "non-UTF-8 comments are comments");
    let err =
        RouteFile::parse_bytes(b"1 1 127.0.0.1:1\n1 1 127.0.0.\xe91:2\n", Path::new("r"), 0).unwrap_err();
    assert_eq!(err.to_string(), "invalid store contents: r:2: not UTF-8 (outside a comment)");
    let bom = RouteFile::parse_bytes(b"\xEF\xBB\xBF1 1 127.0.0.1:1\n", Path::new("r"), 0).unwrap();
    assert_eq!(bom.hosts((1, 1)).len(), 1, "a BOM is not part of the first line");
}

#[test]
fn a_host_given_again_with_another_weight_names_both_lines() {
    let text = "1 1 127.0.0.1:1 3\n2 2 127.0.0.1:1 5\n1 1 127.0.0.1:1 3\n1 1 127.0.0.1:1 4\n";
    let err = RouteFile::parse(text, Path::new("r"), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid store contents: r:4: host given again with another weight (line 1 gives 3) in `1 1 127.0.0.1:1 4`"
    );
}

#[test]
fn hosts_no_caller_can_reach_are_refused_with_their_line() {
    for (host, why) in [
        ("10.0.0.1:0", "port is 0"),
        ("0.0.0.0:80", "address is unspecified (0.0.0.0 or ::)"),
        ("[::]:80", "address is unspecified (0.0.0.0 or ::)"),
        ("255.255.255.255:80", "address is the broadcast address"),
        ("239.1.1.1:80", "address is multicast"),
    ] {
        let err = RouteFile::parse(&format!("1 1 127.0.0.1:1\n1 1 {host}\n"), Path::new("r"), 0).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid store contents: r:2: host {why} in `1 1 {host}`"));
    }
}

#[test]
fn only_a_regular_file_of_bounded_size_is_read() {
    let err = RouteFile::new("/dev/zero").load().unwrap_err();
    assert_eq!(err.to_string(), "invalid store contents: /dev/zero: not a regular file");
    let dir = std::env::temp_dir().join(format!("lars-file-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Refused without opening it: opening a FIFO with no writer would block the loader.
    let err = RouteFile::new(&fifo).load().unwrap_err();
    assert!(err.to_string().ends_with("fifo: not a regular file"), "{err}");
    let big = dir.join("big.conf");
    std::fs::File::create(&big).unwrap().set_len(MAX_ROUTE_FILE + 1).unwrap();
    let err = RouteFile::new(&big).load().unwrap_err();
    assert!(
        err.to_string().ends_with(&format!("{} bytes, over {MAX_ROUTE_FILE}", MAX_ROUTE_FILE + 1)),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn statistics_append_and_the_last_line_of_a_key_wins_across_restarts() {
    let dir = std::env::temp_dir().join(format!("lars-stats-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.txt");
    let row = |port: u16, succ: u32| StatRow {
        modid: 1,
        cmdid: 2,
        host: SocketAddr::from(([10, 0, 0, 1], port)),
        caller: 7,
        succ,
        err: 1,
        ts: 1_764_000_000,
        overload: port == 2,
    };
    let mut store = StatsFile::open(&path).unwrap();
    store.store(&[row(1, 1), row(2, 5)]).unwrap();
    store.store(&[row(1, 3)]).unwrap();
    drop(store);
    assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5)], "an upsert, as in MySQL");
    // A restart compacts what the last run left and appends after it.
    let mut store = StatsFile::open(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2, "compacted at open:\n{text}");
    store.store(&[row(3, 9)]).unwrap();
    drop(store);
    assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5), row(3, 9)]);

    // A crash mid-write leaves a torn last line: ignored when read, cut off at open.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, b"1 2 10.0.0.1:4 7 0 0 17640").unwrap();
    drop(file);
    assert_eq!(StatsFile::read(&path).unwrap().len(), 3);
    let mut store = StatsFile::open(&path).unwrap();
    store.store(&[row(4, 4)]).unwrap();
    drop(store);
    assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5), row(3, 9), row(4, 4)]);

    // A bad line anywhere else is an error naming it.
    std::fs::write(&path, "# header\n1 2 10.0.0.1:1 7 3 1 0 1764000000\n1 2 nowhere 7 3 1 0 1\n").unwrap();
    let err = StatsFile::open(&path).unwrap_err();
    assert_eq!(err.to_string(), format!("invalid store contents: {}:3: host is not ip:port", path.display()));
    let missing = StatsFile::open(dir.join("no/such/dir/stats.txt")).unwrap_err();
    assert!(missing.to_string().contains("no/such/dir does not exist"), "{missing}");
    // Reading one that is not there names it, rather than finding no rows.
    let unwritten = dir.join("unwritten.txt");
    let err = StatsFile::read(&unwritten).unwrap_err();
    assert!(err.to_string().contains(&unwritten.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_statistics_file_is_compacted_when_it_has_doubled() {
    let dir = std::env::temp_dir().join(format!("lars-stats-compact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.txt");
    let mut store = StatsFile::open(&path).unwrap();
    store.compact_min = 64 << 10;
    // One key written over and over: the file stays near its minimum, never grows past it.
    let row = StatRow {
        modid: 1,
        cmdid: 1,
        host: SocketAddr::from(([10, 0, 0, 1], 80)),
        caller: 1,
        succ: 0,
        err: 0,
        ts: 1_764_000_000,
        overload: false,
    };
    let batch: Vec<StatRow> = (0..1000).map(|succ| StatRow { succ, ..row }).collect();
    let line_len = 40;
    for _ in 0..(8 * store.compact_min as usize / (line_len * batch.len())) {
        store.store(&batch).unwrap();
        assert!(store.len <= store.compact_min + (line_len * batch.len()) as u64, "{} bytes", store.len);
    }
    assert!(store.compacted_len < 4096, "compactions kept one row: {} bytes", store.compacted_len);
    drop(store);
    assert_eq!(StatsFile::read(&path).unwrap(), [StatRow { succ: 999, ..row }]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn changed_routes_are_the_difference() {
    let old =
        RouteFile::parse("1 1 127.0.0.1:1\n2 2 127.0.0.1:2\n3 3 127.0.0.1:3\n", Path::new("r"), 1).unwrap();
    let new =
        RouteFile::parse("1 1 127.0.0.1:1\n2 2 127.0.0.1:9\n4 4 127.0.0.1:4\n", Path::new("r"), 2).unwrap();
    assert_eq!(old.changed_routes(&new), [(2, 2), (3, 3), (4, 4)]);
    assert!(new.changed_routes(&new).is_empty());
}

#[test]
fn changes_replace_and_remove_routes_and_share_the_others() {
    let old = RouteFile::parse(
        "1 1 127.0.0.1:1
2 2 127.0.0.1:2
3 3 127.0.0.1:3
",
        Path::new("r"),
        1,
    )
    .unwrap();
    let host = |port| WeightedHost { addr: SocketAddr::from(([127, 0, 0, 1], port)), weight: 1 };
    let changes = super::super::RouteChanges {
        version: 7,
        routes: vec![((2, 2), vec![host(9)]), ((3, 3), vec![]), ((4, 4), vec![host(4)])],
    };
    let new = old.with_changes(changes);
    assert_eq!(new.version, 7);
    assert_eq!(old.changed_routes(&new), [(2, 2), (3, 3), (4, 4)]);
    assert_eq!(new.hosts((2, 2)), [host(9)]);
    assert!(new.hosts((3, 3)).is_empty() && !new.routes.contains_key(&(3, 3)));
    assert!(Arc::ptr_eq(&old.routes[&(1, 1)], &new.routes[&(1, 1)]), "unchanged routes are shared");
}

#[test]
fn two_rewrites_in_one_clock_tick_are_two_versions() {
    let dir = std::env::temp_dir().join(format!("lars-file-version-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.conf");
    let tick = UNIX_EPOCH + std::time::Duration::from_secs(1_764_000_000);
    // An atomic rewrite (as `lars route` does), stamped with the same time as the last one.
    let rewrite = |text: &str| {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::File::options().write(true).open(&temp).unwrap().set_modified(tick).unwrap();
        std::fs::rename(&temp, &path).unwrap();
    };
    rewrite("1 1 127.0.0.1:1\n");
    let mut store = RouteFile::new(&path);
    let first = store.version().unwrap();
    assert_eq!(store.version().unwrap(), first, "unchanged file, same version");
    rewrite("1 1 127.0.0.1:2\n");
    let second = store.version().unwrap();
    assert_ne!(second, first, "same time and length, new inode");
    assert_eq!(store.load().unwrap().version, second);
    assert_eq!(store.version().unwrap(), second);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_host_marked_out_keeps_its_line_but_is_not_served() {
    let text =
        "1 1 10.0.0.1:80\n1 1 10.0.0.2:80 4 out   # draining\n1 1 10.0.0.3:80 out\n2 2 10.0.0.9:80 out\n";
    let table = RouteFile::parse(text, Path::new("r"), 3).unwrap();
    let served: Vec<String> = table.hosts((1, 1)).iter().map(|h| h.addr.to_string()).collect();
    assert_eq!(served, ["10.0.0.1:80"], "lars-dns serves the hosts in rotation only");
    assert!(!table.routes.contains_key(&(2, 2)), "a route whose hosts are all out is not served");
    let lines = RouteFile::parse_lines(text.as_bytes(), Path::new("r")).unwrap();
    let host =
        |addr: &str, weight, in_rotation| HostEntry { addr: addr.parse().unwrap(), weight, in_rotation };
    assert_eq!(
        lines[&(1, 1)],
        [host("10.0.0.1:80", 1, true), host("10.0.0.2:80", 4, false), host("10.0.0.3:80", 1, false)],
        "every line is kept, with its weight"
    );
    assert_eq!(lines[&(2, 2)], [host("10.0.0.9:80", 1, false)]);
    let rendered = RouteFile::render_lines(&lines);
    assert!(rendered.contains("1 1 10.0.0.2:80 4 out\n"), "{rendered}");
    assert_eq!(RouteFile::parse_lines(rendered.as_bytes(), Path::new("r")).unwrap(), lines, "round trip");
    assert_eq!(RouteFile::parse(&rendered, Path::new("r"), 3).unwrap(), table, "and serves the same");
}

#[test]
fn the_out_marker_is_a_last_word_and_means_one_thing_per_host() {
    for (line, error) in [
        ("1 1 10.0.0.1:80 out 3", "expected `modid cmdid host:port [weight] [out]`"),
        ("1 1 10.0.0.1:80 3 out out", "expected `modid cmdid host:port [weight] [out]`"),
        ("1 1 out", "expected `modid cmdid host:port [weight] [out]`"),
        ("1 1 10.0.0.1:80 off", "weight is not a non-negative integer (or `out`)"),
    ] {
        let err = RouteFile::parse(&format!("{line}\n"), Path::new("r"), 0).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid store contents: r:1: {error} in `{line}`"));
    }
    let err = RouteFile::parse("1 1 10.0.0.1:80 2\n1 1 10.0.0.1:80 2 out\n", Path::new("r"), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid store contents: r:2: host given again, in rotation on one line and out on the other (line 1) \
         in `1 1 10.0.0.1:80 2 out`"
    );
    let same = RouteFile::parse("1 1 10.0.0.1:80 2 out\n1 1 10.0.0.1:80 2 out\n", Path::new("r"), 0).unwrap();
    assert!(same.routes.is_empty(), "the same line twice counts once");
}

#[test]
fn a_file_without_the_marker_reads_as_before_and_lines_round_trip_through_the_served_table() {
    let text = "# old file\n7 1 10.0.0.1:80\n7 1 10.0.0.2:80 3\n";
    let lines = RouteFile::parse_lines(text.as_bytes(), Path::new("r")).unwrap();
    assert!(lines.values().flatten().all(|h| h.in_rotation), "no marker: every host in rotation");
    let table = RouteFile::parse(text, Path::new("r"), 0).unwrap();
    assert_eq!(RouteFile::render_lines(&lines), RouteFile::render(&table), "one format either way");
}

#[cfg(feature = "mysql")]
#[test]
fn lars_route_add_and_del_keep_the_hosts_out_of_rotation() {
    use crate::store::mysql::RouteAdmin;
    let dir = std::env::temp_dir().join(format!("lars-file-admin-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.conf");
    std::fs::write(&path, "1 1 10.0.0.1:80\n1 1 10.0.0.2:80 5 out\n").unwrap();
    let mut file = RouteFile::new(&path);
    file.add_host((1, 1), "10.0.0.3:80".parse().unwrap(), 2, &cli()).unwrap();
    assert!(file.remove_host((1, 1), "10.0.0.1:80".parse().unwrap(), &cli()).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("1 1 10.0.0.2:80 5 out\n") && text.contains("1 1 10.0.0.3:80 2\n"), "{text}");
    let served: Vec<String> = file.load().unwrap().hosts((1, 1)).iter().map(|h| h.addr.to_string()).collect();
    assert_eq!(served, ["10.0.0.3:80"]);
    // Adding a host that is out puts it back in, with the weight given.
    file.add_host((1, 1), "10.0.0.2:80".parse().unwrap(), 1, &cli()).unwrap();
    assert_eq!(file.load().unwrap().hosts((1, 1)).len(), 2);
    // Each change is in the audit log beside the file, as the console's are.
    let mut console = crate::store::console::FileConsole::new(&path, None);
    let audit = crate::store::console::ConsoleStore::audit(&mut console, None, 10).unwrap();
    let logged: Vec<(&str, &str, &str)> =
        audit.iter().map(|e| (e.user.as_str(), e.action.as_str(), e.detail.as_str())).collect();
    assert_eq!(
        logged,
        [
            ("ops", "add-host", "10.0.0.2:80 weight 1"),
            ("ops", "remove-host", "10.0.0.1:80"),
            ("ops", "add-host", "10.0.0.3:80 weight 2"),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Who the tests' `lars route` changes are made by.
#[cfg(feature = "mysql")]
fn cli() -> crate::store::console::Actor {
    crate::store::console::Actor { user: "ops".into(), address: "lars route on test".into() }
}
