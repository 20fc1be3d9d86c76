//! Tests of the MySQL stores that need no server: URLs, options and the change cursor.

use super::*;

#[test]
fn a_bad_url_is_reported_without_its_password() {
    let error = opts("mysql://lars:s3cret@db.example:port/lars_dns").unwrap_err().to_string();
    assert!(error.contains("mysql://lars:***@db.example:port/lars_dns"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    assert_eq!(without_password("mysql://root@h/db"), "mysql://root@h/db");
    let error = opts("mysql://u:pa/ss@db/x").unwrap_err().to_string();
    assert!(!error.contains("ss"), "a raw / in the password: {error}");
}

#[test]
fn a_cursor_takes_late_commits_below_it_and_skips_what_it_applied() {
    let now = Instant::from_micros(0);
    let mut cursor = ChangeCursor::at(10, 1, now);
    cursor.advance([8, 10], 2, now);
    assert!(cursor.is_new(11));
    assert!(!cursor.is_new(10) && !cursor.is_new(8));
    assert!(cursor.is_new(9), "id 9 committed after 10 was read");
    cursor.advance([9, 12], 3, now);
    assert_eq!(cursor.id, 12);
    assert!(!cursor.is_new(9) && !cursor.is_new(12) && cursor.is_new(11));
    // The window forgets what falls below it, and reads no further back.
    cursor.advance([12 + LOOKBACK_IDS], 4, now);
    assert_eq!(cursor.read_from(), 12);
    assert!(!cursor.is_new(12), "below the window: not read again");
    assert!(cursor.recent.iter().all(|&id| id > cursor.read_from()));
}

#[test]
fn a_cursor_is_confirmed_only_by_the_version_it_read() {
    let mut cursor = ChangeCursor::at(10, 7, Instant::from_micros(0));
    cursor.confirm(8, Instant::from_micros(5_000_000));
    assert_eq!(cursor.read_at, Instant::from_micros(0), "a newer version: the log has news");
    cursor.confirm(7, Instant::from_micros(9_000_000));
    assert_eq!(cursor.read_at, Instant::from_micros(9_000_000), "unchanged: nothing was logged");
}

#[test]
fn every_connection_has_timeouts_and_the_url_can_set_them() {
    let defaults = opts("mysql://root@127.0.0.1:3306/lars_dns").unwrap();
    assert_eq!(defaults.get_tcp_connect_timeout(), Some(CONNECT_TIMEOUT));
    assert_eq!(defaults.get_read_timeout(), Some(&IO_TIMEOUT));
    assert_eq!(defaults.get_write_timeout(), Some(&IO_TIMEOUT));
    let set = opts("mysql://root@h/db?read_timeout_ms=1500&tcp_connect_timeout_ms=700&write_timeout_ms=20")
        .unwrap();
    assert_eq!(set.get_read_timeout(), Some(&std::time::Duration::from_millis(1500)));
    assert_eq!(set.get_write_timeout(), Some(&std::time::Duration::from_millis(20)));
    assert_eq!(set.get_tcp_connect_timeout(), Some(std::time::Duration::from_millis(700)));
    assert_eq!(set.get_db_name(), Some("db"));
    let error = opts("mysql://root@h/db?read_timeout_ms=soon").unwrap_err().to_string();
    assert!(error.contains("read_timeout_ms=soon is not a number of ms"), "{error}");
    // Options built in code (the `[mysql]` section) get them when a store uses them.
    let built: Opts = mysql::OptsBuilder::new().ip_or_hostname(Some("h")).into();
    assert_eq!(with_timeouts(built).get_read_timeout(), Some(&IO_TIMEOUT));
}
