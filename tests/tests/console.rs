//! The web console (`lars-web`) in headless Chromium, against MariaDB, a running lars-dns,
//! lars-reporter and lars-agent: every kind of change made in the browser reaches
//! `lars get-route` (the real binary, run as an operator runs it) through the agent, the audit
//! log records it, the status page shows a `lars simulate` run, a viewer cannot change
//! anything and a form without its CSRF token is refused. Screenshots go to
//! `target/console-screenshots/`. Also: the console on an unmodified original database and on
//! the route file (a host out of rotation and back), over plain HTTP.

use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;

use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::console::MysqlConsole;
use lars_std::store::mysql::{MysqlRoutes, MysqlStats};
use lars_tests::cli::{lars, lars_exe, lars_ok};
use lars_tests::console::{
    ADMIN_PASSWORD, VIEWER_PASSWORD, console_sign_in, first_cookie, http_sign_in, post, shots, sign_in,
    within,
};
use lars_tests::webdriver::{Browser, http};
use lars_tests::{Scratch, TestDb};
use lars_web::auth::{Role, add_user};
use lars_web::{ConsoleConfig, Running};

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    config
}

fn console_on(db: &TestDb, state: &Scratch) -> Running {
    add_user(&state.0, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    add_user(&state.0, "vic", Role::Viewer, VIEWER_PASSWORD).unwrap();
    let mut store = MysqlConsole::new(db.opts.clone());
    store.ensure_audit_table().unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    lars_web::start(&config, Box::new(store)).unwrap()
}

/// The agent's API endpoints as `lars --agent` takes them.
fn agent_flag(agent: &AgentDaemon) -> String {
    agent.api_addrs().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The route's hosts as `lars get-route` prints them from the agent: (address, weight), or
/// none when it exits 3 (no such route). Any other exit fails the test.
fn get_route(agent: &str, modid: i32, cmdid: i32) -> Vec<(String, u32)> {
    let output = lars(&["get-route", &modid.to_string(), &cmdid.to_string(), "--agent", agent]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => stdout
            .lines()
            .filter(|line| !line.starts_with("version "))
            .map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [addr, "weight", weight] => (addr.to_string(), weight.parse().unwrap()),
                _ => panic!("lars get-route printed {line:?}"),
            })
            .collect(),
        Some(3) => Vec::new(),
        _ => panic!(
            "lars get-route {modid} {cmdid} exited {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn select_host(browser: &mut Browser, host: &str) {
    browser.click(&format!("input[name=host][value='{host}']"));
}

#[test]
fn the_console_in_a_browser_changes_routes_that_reach_the_agent() {
    let db = TestDb::create();
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(100);
    let dns = Dns::start(dns_config, Box::new(MysqlRoutes::new(db.opts.clone()))).unwrap();
    let opts = db.opts.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(MysqlStats::new(opts.clone())))
            .unwrap();
    let mut agent_config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    agent_config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(agent_config).unwrap();
    let api = agent_flag(&agent);
    // Built before anything waits on it (the first call builds it).
    assert!(lars_exe().is_file());

    let state = Scratch::new("console-browser");
    let console = console_on(&db, &state);
    let base = format!("http://{}", console.addr());
    let mut browser = Browser::start();
    let shots = shots();

    // Signing in: a wrong password is refused, the right one opens the service list.
    browser.go(&format!("{base}/services"));
    assert_eq!(browser.title(), "Sign in · lars", "signed out, the console asks to sign in");
    browser.screenshot(&shots.join("01-sign-in.png"));
    browser.fill("input[name=user]", "ann");
    browser.fill("input[name=password]", "not the password");
    browser.submit("form[action='/login'] button");
    assert!(browser.text().contains("Wrong user name or password"));
    sign_in(&mut browser, &base, "ann", ADMIN_PASSWORD);

    // Adding a route from the service list.
    assert!(get_route(&api, 77, 1).is_empty());
    browser.fill("input[name=modid]", "77");
    browser.fill("input[name=cmdid]", "1");
    browser.fill("form[action='/route/add-host'] input[name=host]", "10.9.0.1:8001");
    browser.fill("form[action='/route/add-host'] input[name=weight]", "2");
    browser.submit("form[action='/route/add-host'] button");
    assert!(browser.text().contains("Done: add-host 10.9.0.1:8001 weight 2"), "{}", browser.text());
    within(10, "the new route reaches the agent", || get_route(&api, 77, 1) == [("10.9.0.1:8001".into(), 2)]);
    // A second host from the route's page; a bad address is refused with a message.
    browser.fill("form[action='/route/add-host'] input[name=host]", "10.9.0.300:8002");
    browser.submit("form[action='/route/add-host'] button");
    assert!(browser.text().contains("is not an address with a port"), "{}", browser.text());
    browser.go(&format!("{base}/route?modid=77&cmdid=1"));
    browser.fill("form[action='/route/add-host'] input[name=host]", "10.9.0.2:8002");
    browser.submit("form[action='/route/add-host'] button");
    within(10, "the second host reaches the agent", || get_route(&api, 77, 1).len() == 2);

    // Editing one host's weight.
    select_host(&mut browser, "10.9.0.1:8001");
    browser.fill("input[name=weight][size='4']:not([value])", "5");
    browser.submit("button[value=weight]");
    within(10, "the new weight reaches the agent", || {
        get_route(&api, 77, 1).contains(&("10.9.0.1:8001".into(), 5))
    });
    // Out of rotation: no longer served, still listed; then back.
    select_host(&mut browser, "10.9.0.2:8002");
    browser.submit("button[value=out]");
    within(10, "the host out of rotation leaves the agent", || {
        get_route(&api, 77, 1) == [("10.9.0.1:8001".into(), 5)]
    });
    assert_eq!(browser.count("tr.off[data-host='10.9.0.2:8002']"), 1, "listed as out of rotation");
    browser.screenshot(&shots.join("02-route-host-out-of-rotation.png"));
    select_host(&mut browser, "10.9.0.2:8002");
    browser.submit("button[value=in]");
    within(10, "the host back in rotation reaches the agent", || get_route(&api, 77, 1).len() == 2);
    // A weight for a selection of hosts.
    select_host(&mut browser, "10.9.0.1:8001");
    select_host(&mut browser, "10.9.0.2:8002");
    browser.fill("input[name=weight][size='4']:not([value])", "3");
    browser.submit("button[value=weight]");
    within(10, "both weights reach the agent", || {
        get_route(&api, 77, 1) == [("10.9.0.1:8001".into(), 3), ("10.9.0.2:8002".into(), 3)]
    });
    // A description, shown in the service list.
    browser.fill("form[action='/describe'] input[name=text]", "Payments <test>");
    browser.submit("form[action='/describe'] button");
    browser.go(&format!("{base}/services?q=payments"));
    assert!(browser.text().contains("Payments <test>"), "escaped and shown: {}", browser.text());
    browser.screenshot(&shots.join("03-services.png"));

    // The audit log: every change, by whom and from where.
    browser.go(&format!("{base}/audit"));
    let audit = browser.text();
    for change in ["add-host", "set-weight", "out-of-rotation", "into-rotation", "describe-module"] {
        assert!(audit.contains(change), "audit log has {change}: {audit}");
    }
    assert!(audit.contains("ann") && audit.contains("127.0.0.1"));
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteAudit");
    assert_eq!(rows, 7, "two adds, two weights, out, in, one description");
    browser.screenshot(&shots.join("04-audit.png"));

    // A `lars simulate` run with one host failing every call: the simulator's table shows it,
    // the agent takes it out as overloaded, and the status page shows that.
    let table = lars_ok(&[
        "simulate",
        "77",
        "1",
        "--agent",
        &api,
        "--count",
        "600",
        "--interval-ms",
        "0",
        "--fail",
        "10.9.0.2:8002=1.0",
    ]);
    let row = |host: &str| -> Vec<u64> {
        let line =
            table.lines().find(|line| line.starts_with(host)).unwrap_or_else(|| panic!("{host}: {table}"));
        line.split_whitespace().skip(1).take(3).map(|n| n.parse().unwrap()).collect()
    };
    let (good, bad) = (row("10.9.0.1:8001"), row("10.9.0.2:8002"));
    assert!(good[1] > 0 && good[2] == 0, "the healthy host's calls succeed: {table}");
    assert!(bad[1] == 0 && bad[2] > 0, "the failing host's calls fail: {table}");
    assert!(good[0] > bad[0], "the failing host gets fewer calls once overloaded: {table}");
    assert!(table.contains("of 600 calls"), "{table}");
    within(15, "lars-reporter stores the run with the failing host overloaded", || {
        db.count("SELECT COUNT(*) FROM ServerCallStatus WHERE port = 8002 AND overload = '1'") == 1
    });
    browser.go(&format!("{base}/status?modid=77&cmdid=1"));
    within(5, "the status page shows the overloaded host", || {
        let text = browser.text();
        text.contains("10.9.0.2:8002") && text.contains("overloaded")
    });
    assert_eq!(browser.count("#status svg"), 1, "a chart for the route");
    // The fragment is refreshed in place: replace it and watch the script put it back.
    browser.run("document.getElementById('status').innerHTML = '<p>replaced</p>';");
    within(5, "the script refreshes the status without a reload", || browser.count("#status svg") == 1);
    browser.screenshot(&shots.join("05-status.png"));
    // Signed out (the session cookie gone, as after its expiry): the refresh keeps the last
    // status and marks it stale, rather than pulling the sign-in page into the fragment.
    browser.delete_cookies();
    within(5, "the refresh marks the status stale", || browser.count("#status.stale") == 1);
    assert_eq!(browser.count("#status svg"), 1, "the last status stays");
    assert_eq!(browser.count("#status input[name=password]"), 0, "no sign-in form in the fragment");
    sign_in(&mut browser, &base, "ann", ADMIN_PASSWORD);

    // Deleting the route: gone from the agent.
    browser.go(&format!("{base}/route?modid=77&cmdid=1"));
    browser.click("form[action='/route/delete'] input[name=confirm]");
    browser.submit("form[action='/route/delete'] button");
    assert!(browser.text().contains("Route 77 1 deleted (2 hosts)"), "{}", browser.text());
    within(10, "the deleted route leaves the agent", || get_route(&api, 77, 1).is_empty());
    browser.screenshot(&shots.join("06-route-deleted.png"));

    // A form without its CSRF token is refused, even from a signed-in admin.
    browser.go(&format!("{base}/services"));
    browser.run_and_wait(
        "var f = document.querySelector(\"form[action='/route/add-host']\");\
         f.querySelector('input[name=csrf]').remove();\
         f.modid.value = '78'; f.cmdid.value = '1'; f.host.value = '10.9.0.9:9000'; f.submit();",
    );
    within(5, "the forged form is answered", || browser.title().starts_with("Form refused"));
    assert!(browser.text().contains("CSRF token is missing or wrong"));
    browser.screenshot(&shots.join("07-forged-form-refused.png"));
    let hosts: u64 = db.count("SELECT COUNT(*) FROM RouteData");
    assert_eq!(hosts, 0, "nothing was added");

    // A viewer sees the route but no form to change it, and a post made by hand is refused.
    browser.go(&format!("{base}/services"));
    browser.submit("header form button");
    sign_in(&mut browser, &base, "vic", VIEWER_PASSWORD);
    assert_eq!(browser.count("form[action='/route/add-host']"), 0, "no add form for a viewer");
    browser.run_and_wait(
        "var token = document.querySelector('input[name=csrf]').value;\
         var f = document.createElement('form'); f.method = 'post'; f.action = '/route/add-host';\
         [['csrf', token], ['modid', '79'], ['cmdid', '1'], ['host', '10.9.0.9:9000']].forEach(function (p) {\
           var i = document.createElement('input'); i.name = p[0]; i.value = p[1]; f.appendChild(i); });\
         document.body.appendChild(f); f.submit();",
    );
    within(5, "the viewer's post is answered", || browser.title().starts_with("Not allowed"));
    assert!(browser.text().contains("Viewers can look but not change anything"));
    browser.screenshot(&shots.join("08-viewer-refused.png"));
    let hosts: u64 = db.count("SELECT COUNT(*) FROM RouteData");
    assert_eq!(hosts, 0, "nothing was added by the viewer");

    drop(browser);
    drop(console);
    drop((agent, reporter, dns));
}

#[test]
fn on_an_original_database_the_console_reads_and_adds_and_names_db_init_for_the_rest() {
    let db = TestDb::create_original();
    db.console_add(5, 1, "10.0.5.1".parse().unwrap(), 80);
    let state = Scratch::new("console-original");
    let console = console_on(&db, &state);
    let addr = console.addr();
    let (cookie, csrf) = http_sign_in(addr, "ann", ADMIN_PASSWORD);
    let list = http(addr, "GET", "/services", &[("Cookie", &cookie)], b"").unwrap();
    assert!(list.body.contains("route?modid=5&amp;cmdid=1"), "{}", list.body);
    let route = http(addr, "GET", "/route?modid=5&cmdid=1", &[("Cookie", &cookie)], b"").unwrap();
    assert!(route.body.contains("run <code>lars db-init</code>"), "the page says rotation needs db-init");
    // A host with weight 1 is added (the audit table is new, not a change to an original one).
    let added = post(
        addr,
        &cookie,
        "/route/add-host",
        &format!("csrf={csrf}&modid=5&cmdid=1&host=10.0.5.2:80&weight=1"),
    );
    assert_eq!(added.status, 303, "{}", added.body);
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteData WHERE modid = 5");
    assert_eq!(rows, 2);
    let change: u64 = db.count("SELECT COUNT(*) FROM RouteChange WHERE modid = 5");
    assert_eq!(change, 2, "the original console's row and ours: lars-dns pushes the route");
    // Another weight, or out of rotation: refused, naming db-init, nothing changed.
    let weighted = post(
        addr,
        &cookie,
        "/route/add-host",
        &format!("csrf={csrf}&modid=5&cmdid=1&host=10.0.5.3:80&weight=4"),
    );
    assert_eq!(weighted.status, 409);
    assert!(weighted.body.contains("no RouteData.weight column") && weighted.body.contains("lars db-init"));
    let out = post(
        addr,
        &cookie,
        "/route/hosts",
        &format!("csrf={csrf}&modid=5&cmdid=1&host=10.0.5.1:80&action=out"),
    );
    assert_eq!(out.status, 409);
    assert!(out.body.contains("no RouteData.disabled column"), "{}", out.body);
    // No token, a GET to a form's address, or no session: refused, nothing changed.
    assert_eq!(post(addr, &cookie, "/route/add-host", "modid=5&cmdid=1&host=10.0.5.4:80").status, 403);
    assert_eq!(
        http(addr, "GET", "/route/delete?modid=5&cmdid=1", &[("Cookie", &cookie)], b"").unwrap().status,
        405
    );
    assert_eq!(
        post(
            addr,
            "lars_session=ann:9999999999:00:00",
            "/route/delete",
            &format!("csrf={csrf}&modid=5&cmdid=1&confirm=yes")
        )
        .status,
        403
    );
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteData WHERE modid = 5");
    assert_eq!(rows, 2);
    let audit: u64 = db.count("SELECT COUNT(*) FROM RouteAudit");
    assert_eq!(audit, 1, "only the change that was made is recorded");
}

#[test]
fn a_store_that_cannot_be_reached_gives_an_error_page_and_changes_nothing() {
    let state = Scratch::new("console-outage");
    add_user(&state.0, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let opts = mysql::Opts::from_url(&format!("mysql://root@127.0.0.1:{port}/lars_dns")).unwrap();
    let mut config = ConsoleConfig::new(&state.0);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let console = lars_web::start(&config, Box::new(MysqlConsole::new(opts))).unwrap();
    let addr = console.addr();
    // Signing in needs no store: the users live in the state directory.
    let signed_in = console_sign_in(addr, "ann", ADMIN_PASSWORD).unwrap();
    assert_eq!(signed_in.status, 303);
    let cookie = first_cookie(&signed_in);
    let list = http(addr, "GET", "/services", &[("Cookie", &cookie)], b"").unwrap();
    assert_eq!(list.status, 503);
    assert!(
        list.body.contains("The store could not be reached") && list.body.contains("Nothing was changed")
    );
    // The CSRF token comes from the error page's sign-out form.
    let csrf = list.body.split("name=csrf value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let added =
        post(addr, &cookie, "/route/add-host", &format!("csrf={csrf}&modid=5&cmdid=1&host=10.0.5.2:80"));
    assert_eq!(added.status, 503, "{}", added.body);
}

#[test]
fn on_the_route_file_the_console_changes_what_lars_dns_serves_and_keeps_an_audit_file() {
    let scratch = Scratch::new("console-file");
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, "6 1 10.0.6.1:80\n").unwrap();
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(100);
    let dns = Dns::start(dns_config, Box::new(lars_std::store::file::RouteFile::new(&routes))).unwrap();
    let mut agent_config =
        AgentDaemonConfig::new(vec![dns.local_addr()], vec!["127.0.0.1:9".parse().unwrap()]);
    agent_config.api = vec!["127.0.0.1:0".parse().unwrap(); 3];
    let agent = AgentDaemon::start(agent_config).unwrap();
    let api = agent_flag(&agent);
    within(30, "the agent serves the file's route", || get_route(&api, 6, 1).len() == 1);

    let state = scratch.0.join("state");
    add_user(&state, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    let mut config = ConsoleConfig::new(&state);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let store = lars_std::store::console::FileConsole::new(&routes, None);
    let console = lars_web::start(&config, Box::new(store)).unwrap();
    let addr = console.addr();
    let (cookie, csrf) = http_sign_in(addr, "ann", ADMIN_PASSWORD);
    let hosts = |action: &str, host: &str| {
        let body = format!("csrf={csrf}&modid=6&cmdid=1&host={host}&action={action}&weight=7");
        post(addr, &cookie, "/route/hosts", &body)
    };

    let added = post(
        addr,
        &cookie,
        "/route/add-host",
        &format!("csrf={csrf}&modid=6&cmdid=1&host=%5B2001%3Adb8%3A%3A6%5D%3A80&weight=3"),
    );
    assert_eq!(added.status, 303, "{}", added.body);
    within(10, "the IPv6 host reaches the agent", || {
        get_route(&api, 6, 1).contains(&("[2001:db8::6]:80".into(), 3))
    });
    assert_eq!(hosts("weight", "10.0.6.1:80").status, 303);
    within(10, "the weight reaches the agent", || get_route(&api, 6, 1).contains(&("10.0.6.1:80".into(), 7)));

    // Out of rotation: the line stays, marked, and lars-dns stops serving the host.
    let out = hosts("out", "10.0.6.1:80");
    assert_eq!(out.status, 303, "{}", out.body);
    within(10, "the host out of rotation leaves the agent", || {
        get_route(&api, 6, 1) == [("[2001:db8::6]:80".into(), 3)]
    });
    let file = std::fs::read_to_string(&routes).unwrap();
    assert!(file.lines().any(|line| line == "6 1 10.0.6.1:80 7 out"), "kept with its weight:\n{file}");
    let page = http(addr, "GET", "/route?modid=6&cmdid=1", &[("Cookie", &cookie)], b"").unwrap();
    assert!(page.body.contains("<tr class=off data-host=\"10.0.6.1:80\">"), "listed as out: {}", page.body);
    let listed = lars_ok(&["route", "list", "--routes", routes.to_str().unwrap()]);
    assert!(
        listed.lines().any(|l| l.contains("10.0.6.1:80") && l.ends_with("out of rotation")),
        "`lars route list` shows it: {listed}"
    );
    assert!(listed.contains("1 routes, 2 hosts (1 out of rotation)"), "{listed}");
    // `lars route` rewrites the file and keeps the host out.
    lars_ok(&["route", "add", "6", "1", "10.0.6.2:80", "--routes", routes.to_str().unwrap()]);
    within(10, "the host added by `lars route` reaches the agent", || get_route(&api, 6, 1).len() == 2);
    assert!(!get_route(&api, 6, 1).iter().any(|(host, _)| host == "10.0.6.1:80"), "still out");
    // Back in rotation.
    assert_eq!(hosts("in", "10.0.6.1:80").status, 303);
    within(10, "the host back in rotation reaches the agent", || {
        get_route(&api, 6, 1).contains(&("10.0.6.1:80".into(), 7))
    });

    let deleted = post(addr, &cookie, "/route/delete", &format!("csrf={csrf}&modid=6&cmdid=1&confirm=yes"));
    assert_eq!(deleted.status, 303);
    within(10, "the deleted route leaves the agent", || get_route(&api, 6, 1).is_empty());
    let audit = std::fs::read_to_string(scratch.0.join("routes.conf.audit")).unwrap();
    let actions: Vec<&str> = audit.lines().map(|line| line.split('\t').nth(3).unwrap()).collect();
    // The console's changes and, in their place, the one `lars route` made.
    assert_eq!(
        actions,
        ["add-host", "set-weight", "out-of-rotation", "add-host", "into-rotation", "remove-route"]
    );
    let by_cli = audit.lines().nth(3).unwrap();
    assert!(by_cli.contains("\tlars route on ") && by_cli.contains("10.0.6.2:80 weight 1"), "{by_cli}");
    let page = http(addr, "GET", "/audit?modid=6&cmdid=1", &[("Cookie", &cookie)], b"").unwrap();
    assert!(
        page.body.contains("[2001:db8::6]:80 weight 3") && page.body.contains("127.0.0.1"),
        "{}",
        page.body
    );
    drop(console);
    drop((agent, dns));
}

#[test]
fn lars_dns_leaves_out_hosts_out_of_rotation_in_full_loads_and_change_reads() {
    use lars_std::store::RouteStore;
    let db = TestDb::create();
    let mut conn = db.conn();
    let served = |hosts: &[lars_core::wire::native::WeightedHost]| -> Vec<String> {
        hosts.iter().map(|h| h.addr.to_string()).collect()
    };
    conn.query_drop(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport, weight, disabled) VALUES \
         (8, 1, 167772161, 80, 1, 0), (8, 1, 167772163, 80, 1, 1)",
    )
    .unwrap();
    let mut store = MysqlRoutes::new(db.opts.clone());
    assert_eq!(served(store.load().unwrap().hosts((8, 1))), ["10.0.0.1:80"], "the full load");
    // A change read: another host, out of rotation, in the same transaction as its log row.
    let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
    tx.query_drop(
        "INSERT INTO RouteData (modid, cmdid, serverip, serverport, weight, disabled) VALUES (8, 1, 167772162, 80, 1, 1)",
    )
    .unwrap();
    lars_tests::console_bump(&mut tx, 8, 1);
    tx.commit().unwrap();
    let changes = store.changes().unwrap().expect("the change log names the route");
    assert_eq!(changes.routes.len(), 1);
    assert_eq!(served(&changes.routes[0].1), ["10.0.0.1:80"], "the change read");
}

/// A console on a route file holding `6 1 10.0.6.1:80`, with the users ann (admin) and vic
/// (viewer); the file's path comes back with it.
fn console_on_a_file(scratch: &Scratch) -> (Running, PathBuf) {
    let routes = scratch.0.join("routes.conf");
    std::fs::write(&routes, "6 1 10.0.6.1:80\n").unwrap();
    let state = scratch.0.join("state");
    add_user(&state, "ann", Role::Admin, ADMIN_PASSWORD).unwrap();
    add_user(&state, "vic", Role::Viewer, VIEWER_PASSWORD).unwrap();
    let mut config = ConsoleConfig::new(&state);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let store = lars_std::store::console::FileConsole::new(&routes, None);
    (lars_web::start(&config, Box::new(store)).unwrap(), routes)
}

#[test]
fn a_viewer_is_refused_every_change_and_no_get_changes_anything() {
    let scratch = Scratch::new("console-viewer");
    let (console, routes) = console_on_a_file(&scratch);
    let addr = console.addr();
    let before = std::fs::read(&routes).unwrap();
    let (cookie, csrf) = http_sign_in(addr, "vic", VIEWER_PASSWORD);
    let changes = [
        ("/route/add-host", "modid=6&cmdid=1&host=10.0.6.2:80&weight=1"),
        ("/route/hosts", "modid=6&cmdid=1&host=10.0.6.1:80&action=weight&weight=5"),
        ("/route/hosts", "modid=6&cmdid=1&host=10.0.6.1:80&action=out"),
        ("/route/hosts", "modid=6&cmdid=1&host=10.0.6.1:80&action=remove"),
        ("/route/delete", "modid=6&cmdid=1&confirm=yes"),
        ("/describe", "kind=module&id=6&text=mine"),
    ];
    for (path, form) in changes {
        let answer = post(addr, &cookie, path, &format!("csrf={csrf}&{form}"));
        assert_eq!(answer.status, 403, "a viewer's {path} {form}: {}", answer.body);
        assert!(answer.body.contains("Viewers can look but not change anything"), "{}", answer.body);
        // The same as a GET, from anyone: a form's address takes no GET.
        let get = http(addr, "GET", &format!("{path}?{form}"), &[("Cookie", &cookie)], b"").unwrap();
        assert_eq!(get.status, 405, "GET {path}?{form}");
    }
    // An admin's GET changes nothing either.
    let (admin, _) = http_sign_in(addr, "ann", ADMIN_PASSWORD);
    for (path, form) in changes {
        let get = http(addr, "GET", &format!("{path}?{form}"), &[("Cookie", &admin)], b"").unwrap();
        assert_eq!(get.status, 405, "an admin's GET {path}?{form}");
    }
    assert_eq!(std::fs::read(&routes).unwrap(), before, "the route file is untouched");
    assert!(!scratch.0.join("routes.conf.audit").exists(), "and nothing was recorded");
}

#[test]
fn failed_sign_ins_are_limited_per_user_and_per_address_on_the_page() {
    use lars_web::auth::{ADDRESS_FAILURES, USER_FAILURES};
    let scratch = Scratch::new("console-limits");
    let (console, _) = console_on_a_file(&scratch);
    let addr = console.addr();
    for _ in 0..USER_FAILURES {
        assert_eq!(console_sign_in(addr, "ann", "a wrong guess").unwrap().status, 401);
    }
    // ann is locked, even with her password; vic, from the same address, is not.
    let locked = console_sign_in(addr, "ann", ADMIN_PASSWORD).unwrap();
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.body.contains("Too many failed sign-ins for this user or address"), "{}", locked.body);
    assert_eq!(console_sign_in(addr, "vic", VIEWER_PASSWORD).unwrap().status, 303);
    // One address guessing many names is stopped, whoever it tries next.
    for i in USER_FAILURES..ADDRESS_FAILURES {
        assert_eq!(console_sign_in(addr, &format!("guess{i}"), "a wrong guess").unwrap().status, 401);
    }
    assert_eq!(console_sign_in(addr, "vic", VIEWER_PASSWORD).unwrap().status, 429, "the address is locked");
}

#[test]
fn lars_route_on_mysql_lists_every_host_as_the_console_does_and_adding_again_replaces() {
    let db = TestDb::create();
    let server = std::env::var("LARS_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let url = format!("{}/{}", server.trim_end_matches('/'), db.name);
    lars_ok(&["route", "add", "9", "1", "10.0.9.1:80", "--weight", "2", "--mysql", &url]);
    lars_ok(&["route", "add", "9", "1", "10.0.9.2:80", "--mysql", &url]);
    // Again with another weight: the same row, the new weight (as on the route file).
    lars_ok(&["route", "add", "9", "1", "10.0.9.1:80", "--weight", "4", "--mysql", &url]);
    let rows: u64 = db.count("SELECT COUNT(*) FROM RouteData");
    assert_eq!(rows, 2, "no second row for the same host");
    // Out of rotation (as the console does it): listed, marked, not served.
    db.conn()
        .query_drop("UPDATE RouteData SET disabled = 1 WHERE serverport = 80 AND serverip = 167774465")
        .unwrap();
    let listed = lars_ok(&["route", "list", "--mysql", &url]);
    let line = |host: &str| {
        listed.lines().find(|l| l.contains(host)).unwrap_or_else(|| panic!("{listed}")).to_string()
    };
    assert!(line("10.0.9.1:80").ends_with("4  out of rotation"), "{listed}");
    assert!(line("10.0.9.2:80").ends_with(" 1"), "{listed}");
    assert!(listed.contains("1 routes, 2 hosts (1 out of rotation)"), "{listed}");
    // `lars route add` puts it back.
    lars_ok(&["route", "add", "9", "1", "10.0.9.1:80", "--weight", "4", "--mysql", &url]);
    let listed = lars_ok(&["route", "list", "--mysql", &url]);
    assert!(listed.contains("(0 out of rotation)"), "{listed}");
    let failed = lars(&["route", "add", "9", "1", "239.1.1.1:80", "--mysql", &url]);
    assert_eq!(failed.status.code(), Some(70));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("address is multicast"));
}
