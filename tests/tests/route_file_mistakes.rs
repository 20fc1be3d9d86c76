//! lars-dns on a route file an operator got wrong: a non-UTF-8 byte in a comment is a comment,
//! one outside a comment, a host given twice with two weights or a host no caller can reach
//! fails the load naming the line while the last good routes keep serving, and a FIFO or
//! `/dev/zero` in its place is refused without blocking the loader or filling memory.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::store::file::RouteFile;
use lars_tests::{Scratch, eventually};

fn dns_on(routes: &Path) -> Dns {
    let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.threads = 1;
    let mut config = DnsConfig::new(server);
    config.poll_interval = Duration::from_millis(20);
    Dns::start(config, Box::new(RouteFile::new(routes))).unwrap()
}

/// Rewrites the route file atomically, as `lars route` does.
fn write_routes(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn a_non_utf8_comment_is_a_comment_and_bad_lines_keep_the_last_good_routes() {
    let scratch = Scratch::new("route-mistakes");
    let routes = scratch.0.join("routes.conf");
    write_routes(&routes, b"# r\xe9seau de test\n5 1 10.5.0.1:80 # caf\xe9\n5 1 10.5.0.2:80\n");
    let dns = dns_on(&routes);
    eventually("the routes of a file with non-UTF-8 comments", || dns.snapshot().hosts((5, 1)).len() == 2);

    let errors = || dns.stats().load_errors.load(Ordering::Relaxed);
    for bad in [
        &b"5 1 10.5.0.1:80\n5 1 10.5.0.\xe93:80\n"[..],
        b"5 1 10.5.0.1:80 2\n5 1 10.5.0.1:80 3\n",
        b"5 1 10.5.0.1:0\n",
        b"5 1 0.0.0.0:80\n",
        b"5 1 255.255.255.255:80\n",
    ] {
        let before = errors();
        write_routes(&routes, bad);
        eventually("the bad file is refused", || errors() > before);
        assert_eq!(dns.snapshot().hosts((5, 1)).len(), 2, "the last good routes keep serving");
    }
    dns.shutdown();
}

#[test]
fn a_fifo_or_dev_zero_as_the_route_file_is_refused_and_the_dns_stops() {
    let scratch = Scratch::new("route-kinds");
    let fifo = scratch.0.join("routes.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let dns = dns_on(path);
        eventually("the load is refused", || dns.stats().load_errors.load(Ordering::Relaxed) > 0);
        assert!(dns.snapshot().routes.is_empty());
        // A loader blocked on the FIFO, or reading /dev/zero for ever, would never stop.
        dns.shutdown();
    }
}
