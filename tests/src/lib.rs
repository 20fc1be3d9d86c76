//! lars-tests: integration tests that start real lars components on loopback. This library holds
//! what the test files share: a blocking framed client, an echo service, test databases (with
//! lars's schema or the original's), peers that speak only the original protocol
//! ([`original`]), daemon binaries run as systemd runs them ([`process`], which the
//! binaries' own tests include by path), the `lars` tool built from the current sources
//! ([`cli`]), a WebDriver client for the console's browser tests ([`webdriver`]), with
//! what those tests share ([`console`]), and the schema's tables ([`schema`]) and the
//! benchmarks' busy core ([`spinner`]), which xtask includes by path.

pub mod cli;
pub mod console;
pub mod mariadb;
pub mod original;
pub mod process;
pub mod schema;
pub mod spinner;
pub mod webdriver;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lars_core::wire::{MsgId, Raw};
use lars_std::reactor::{Conns, Control, Sender, ServerConfig, ServerHandle, Service, TcpServer};

/// Builds a frame: header and body.
pub fn frame_bytes(msgid: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + body.len());
    bytes.extend_from_slice(&msgid.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// A blocking client speaking frames, with a read timeout so a broken server fails the test
/// instead of hanging it.
pub struct FrameClient {
    /// The socket.
    pub stream: TcpStream,
}

impl FrameClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<FrameClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(FrameClient { stream })
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one frame: `(msgid, body)`.
    pub fn read_frame(&mut self) -> io::Result<(u32, Vec<u8>)> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header)?;
        let msgid = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut body = vec![0; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok((msgid, body))
    }

    /// Whether the server closed the connection (read gives EOF or a reset).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted),
        }
    }
}

/// Tasks the echo service takes from other threads.
pub enum EchoTask {
    /// Send `count` frames of `size` bytes to every connection of the worker.
    Push {
        /// Frames per connection.
        count: usize,
        /// Body size.
        size: usize,
    },
}

/// Echoes every frame back on its msgid; pushes on request.
pub struct Echo;

impl Service for Echo {
    type Task = EchoTask;

    fn frame(
        &mut self,
        _conn: lars_std::reactor::ConnId,
        frame: lars_core::wire::Frame<'_>,
        reply: &mut Sender<'_>,
    ) -> Control {
        Control::after(reply.send(frame.msgid, &Raw(frame.body)))
    }

    fn task(&mut self, task: EchoTask, conns: &mut Conns<'_>) {
        let EchoTask::Push { count, size } = task;
        let body = vec![0x5a; size];
        let ids: Vec<_> = conns.ids().collect();
        for id in ids {
            for _ in 0..count {
                if conns.send(id, MsgId::Heartbeat, &Raw(&body)).is_err() {
                    break;
                }
            }
        }
    }
}

/// Starts an echo server on a free loopback port.
pub fn echo_server(threads: usize, max_conns: usize) -> ServerHandle<EchoTask> {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = threads;
    config.max_conns = max_conns;
    TcpServer::start(config, |_| Echo).expect("start the echo server")
}

/// A uniquely named MariaDB database for one test, with the lars schema, dropped on drop.
/// The server comes from `LARS_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`), which
/// `cargo xtask test` always provides.
pub struct TestDb {
    server: mysql::Opts,
    /// The database's name.
    pub name: String,
    /// Options for connecting to it.
    pub opts: mysql::Opts,
}

impl TestDb {
    /// Creates the database and lars's schema (`lars db-init`).
    pub fn create() -> TestDb {
        let db = TestDb::empty();
        lars_std::store::mysql::init_schema(&db.opts).expect("create the lars schema");
        db
    }

    /// Creates the database with the schema the original Lars's `base/sql/lars_dns.sql` makes
    /// (written here from LARS-REFERENCE §4): no `weight` column and no `(modid, cmdid)` index.
    pub fn create_original() -> TestDb {
        use mysql::prelude::Queryable;
        let db = TestDb::empty();
        let mut conn = db.conn();
        for statement in ORIGINAL_SCHEMA {
            conn.query_drop(statement).expect("create the original schema");
        }
        db
    }

    /// Creates the database and runs `script` in it, statement by statement (for the
    /// packages' `schema.sql`).
    pub fn create_from_script(script: &str) -> TestDb {
        use mysql::prelude::Queryable;
        let db = TestDb::empty();
        let mut conn = db.conn();
        let statements = script.split(";\n").map(|s| {
            s.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
        });
        for statement in statements.filter(|s| !s.trim().is_empty()) {
            conn.query_drop(&statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        db
    }

    fn empty() -> TestDb {
        use mysql::prelude::Queryable;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = std::env::var("LARS_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let server = mysql::Opts::from_url(&url).expect("LARS_MYSQL_URL is a mysql:// URL");
        let name = format!("lars_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = mysql::Conn::new(server.clone()).unwrap_or_else(|e| {
            panic!("MySQL at {url} is required (run the tests with `cargo xtask test`): {e}")
        });
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        conn.query_drop(format!("CREATE DATABASE {name}")).unwrap();
        let opts: mysql::Opts =
            mysql::OptsBuilder::from_opts(server.clone()).db_name(Some(name.clone())).into();
        TestDb { server, name, opts }
    }

    /// A connection to the test database.
    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(self.opts.clone()).expect("connect to the test database")
    }

    /// What a `SELECT COUNT(*) ...` says.
    pub fn count(&self, sql: &str) -> u64 {
        use mysql::prelude::Queryable;
        self.conn().query_first(sql).expect("count rows").unwrap_or(0)
    }
}

impl TestDb {
    /// What the original web console does to add a host: a `RouteData` row (without a
    /// weight, which the original schema has not), a `RouteVersion` bump and a `RouteChange`
    /// row.
    pub fn console_add(&self, modid: u32, cmdid: u32, ip: std::net::Ipv4Addr, port: u16) {
        use mysql::prelude::Queryable;
        let mut conn = self.conn();
        // In one transaction, so that lars-dns never sees the version bumped before the
        // change-log row exists (it would then load everything, which is right but another
        // path than the one a test may be about).
        let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
        tx.exec_drop(
            "INSERT INTO RouteData (modid, cmdid, serverip, serverport) VALUES (?, ?, ?, ?)",
            (modid, cmdid, ip.to_bits(), port),
        )
        .unwrap();
        console_bump(&mut tx, modid, cmdid);
        tx.commit().unwrap();
    }

    /// What the original web console does to remove a host.
    pub fn console_delete(&self, modid: u32, cmdid: u32, ip: std::net::Ipv4Addr, port: u16) {
        use mysql::prelude::Queryable;
        let mut conn = self.conn();
        let mut tx = conn.start_transaction(mysql::TxOpts::default()).unwrap();
        tx.exec_drop(
            "DELETE FROM RouteData WHERE modid = ? AND cmdid = ? AND serverip = ? AND serverport = ?",
            (modid, cmdid, ip.to_bits(), port),
        )
        .unwrap();
        console_bump(&mut tx, modid, cmdid);
        tx.commit().unwrap();
    }
}

/// The console's version bump and change-log row for `(modid, cmdid)`.
pub fn console_bump(conn: &mut impl mysql::prelude::Queryable, modid: u32, cmdid: u32) {
    conn.query_drop("UPDATE RouteVersion SET version = version + 1 WHERE id = 1").unwrap();
    let version: u64 = conn.query_first("SELECT version FROM RouteVersion WHERE id = 1").unwrap().unwrap();
    conn.exec_drop(
        "INSERT INTO RouteChange (modid, cmdid, version) VALUES (?, ?, ?)",
        (modid, cmdid, version),
    )
    .unwrap();
}

/// A scratch folder, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// A new folder named after `name` and this process.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lars-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The original Lars schema, table by table, as its SQL file creates it.
const ORIGINAL_SCHEMA: &[&str] = &[
    "CREATE TABLE RouteData (
        id int(10) unsigned NOT NULL AUTO_INCREMENT,
        modid int(10) unsigned NOT NULL,
        cmdid int(10) unsigned NOT NULL,
        serverip int(10) unsigned NOT NULL,
        serverport int(10) unsigned NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB AUTO_INCREMENT=116064 DEFAULT CHARSET=utf8",
    "CREATE TABLE RouteVersion (
        id int(10) unsigned NOT NULL AUTO_INCREMENT,
        version int(10) unsigned NOT NULL,
        PRIMARY KEY (id)
     )",
    "INSERT INTO RouteVersion (version) VALUES (0)",
    "CREATE TABLE RouteChange (
        id int(10) unsigned NOT NULL AUTO_INCREMENT,
        modid int(10) unsigned NOT NULL,
        cmdid int(10) unsigned NOT NULL,
        version bigint(20) unsigned NOT NULL,
        PRIMARY KEY (id)
     )",
    "CREATE TABLE ServerCallStatus (
        modid int(11) NOT NULL,
        cmdid int(11) NOT NULL,
        ip int(11) unsigned NOT NULL,
        port int(11) unsigned NOT NULL,
        caller int(11) unsigned NOT NULL,
        succ_cnt int(11) NOT NULL,
        err_cnt int(11) NOT NULL,
        ts bigint(20) NOT NULL,
        overload char(1) NOT NULL,
        PRIMARY KEY (modid, cmdid, ip, port, caller),
        KEY mlb_index (modid, cmdid, ip, port, caller)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE ModIDConfig (
        id int(10) unsigned NOT NULL AUTO_INCREMENT,
        modid int(10) unsigned NOT NULL,
        content char(255) NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE CmdIDConfig (
        id int(10) unsigned NOT NULL AUTO_INCREMENT,
        cmdid int(10) unsigned NOT NULL,
        content char(255) NOT NULL,
        PRIMARY KEY (id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8",
];

impl Drop for TestDb {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut conn) = mysql::Conn::new(self.server.clone()) {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// Waits for `condition`, one that comes true at once or within a few polls of the code under
/// test: up to 10 s (5 s and [`eventually_within`]'s margin), for a loaded machine.
pub fn eventually(what: &str, condition: impl FnMut() -> bool) {
    eventually_within(Duration::from_secs(5), what, condition);
}

/// [`eventually`] for a condition that may take up to `limit` to come true, plus a 5 s margin.
pub fn eventually_within(limit: Duration, what: &str, condition: impl FnMut() -> bool) {
    eventually_every(Duration::from_millis(5), limit, what, condition);
}

/// [`eventually_within`] for a condition that is costly to test (a query to another process):
/// tested every `every` instead of every 5 ms.
#[allow(clippy::disallowed_methods)] // a test's own deadline, not time the code under test sees
pub fn eventually_every(every: Duration, limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit + Duration::from_secs(5);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(every);
    }
}
