//! The agent's steady state allocates nothing (DESIGN §4): `get_host`, `report`, a route push
//! and a statistics flush, through the real lars-agent daemon, with lars-dns and lars-reporter
//! on loopback. A counting global allocator tallies allocations per thread; the agent runs on
//! its one thread, named `lars-agent`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use lars_core::wire::native::{self, Outcome};
use lars_core::wire::{Decode, Frame, MsgId, frame};
use lars_std::agent::{AgentDaemon, AgentDaemonConfig};
use lars_std::dns::{Dns, DnsConfig};
use lars_std::reactor::ServerConfig;
use lars_std::reporter::{Reporter, ReporterConfig};
use lars_std::store::memory::{MemoryRoutes, MemoryStats};
use lars_tests::eventually;

/// Allocation counts by thread id: claimed by a thread's first allocation, never freed.
struct Slot {
    tid: AtomicI32,
    allocations: AtomicU64,
}

const SLOTS: usize = 512;
static COUNTS: [Slot; SLOTS] =
    [const { Slot { tid: AtomicI32::new(0), allocations: AtomicU64::new(0) } }; SLOTS];

thread_local! {
    /// This thread's id (0 until its first allocation looks it up).
    static TID: Cell<i32> = const { Cell::new(0) };
    /// Set while this thread records where it allocated: what that allocates is not counted.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// The thread whose next allocation is recorded with its backtrace (0: none), and the record:
/// a failure then says where the agent allocated, not only that it did.
static WATCHED: AtomicI32 = AtomicI32::new(0);
static FIRST_ALLOCATION: Mutex<Option<String>> = Mutex::new(None);

struct Counting;

fn count_allocation() {
    if RECORDING.with(Cell::get) {
        return;
    }
    let tid = TID.with(|tid| {
        if tid.get() == 0 {
            tid.set(rustix::thread::gettid().as_raw_nonzero().get());
        }
        tid.get()
    });
    if WATCHED.load(Ordering::Relaxed) == tid {
        record_where(tid);
    }
    for slot in &COUNTS {
        match slot.tid.compare_exchange(0, tid, Ordering::Relaxed, Ordering::Relaxed) {
            Err(owner) if owner != tid => continue,
            _ => {
                slot.allocations.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Records the backtrace of the watched thread's first allocation since it was watched.
fn record_where(tid: i32) {
    RECORDING.with(|recording| recording.set(true));
    WATCHED.store(0, Ordering::Relaxed);
    if let Ok(mut first) = FIRST_ALLOCATION.try_lock()
        && first.is_none()
    {
        *first = Some(format!("thread {tid}:\n{}", std::backtrace::Backtrace::force_capture()));
    }
    RECORDING.with(|recording| recording.set(false));
}

// SAFETY: every call is passed to the system allocator unchanged; counting only touches
// atomics and a const-initialised thread-local without a destructor, so it never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: as for `dealloc`; the new size is the caller's, as `realloc` requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations so far by the thread named `name`.
fn allocations_of(name: &str) -> u64 {
    let tid = thread_named(name);
    COUNTS
        .iter()
        .find(|slot| slot.tid.load(Ordering::Relaxed) == tid)
        .map_or(0, |slot| slot.allocations.load(Ordering::Relaxed))
}

/// The id of the thread named `name` (there must be exactly one).
fn thread_named(name: &str) -> i32 {
    let tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| entry.file_name().to_str()?.parse().ok()).flatten()
        })
        .collect();
    assert_eq!(tids.len(), 1, "threads named {name}: {tids:?}");
    tids[0]
}

fn loopback() -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 1;
    config
}

/// A caller on a plain UDP socket with its datagrams encoded once.
struct Caller {
    socket: UdpSocket,
    get_host: Vec<u8>,
    reply: Vec<u8>,
}

impl Caller {
    fn new(agent: SocketAddr) -> Caller {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(agent).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut get_host = vec![0; 64];
        let request = native::GetHostRequest { seq: 1, modid: 1001, cmdid: 1, key: None };
        let len = frame::encode(MsgId::NativeGetHostRequest, &request, &mut get_host).unwrap();
        get_host.truncate(len);
        Caller { socket, get_host, reply: vec![0; 65_536] }
    }

    /// One get_host and the report of its call.
    fn call(&mut self) -> SocketAddr {
        self.socket.send(&self.get_host).unwrap();
        let n = self.socket.recv(&mut self.reply).unwrap();
        let frame = Frame::parse_datagram(&self.reply[..n], frame::MAX_BODY).unwrap();
        let answer = native::GetHostResponse::parse(frame.body).unwrap();
        let host = answer.host.expect("the route is held");
        let report = native::Report { modid: 1001, cmdid: 1, host, outcome: Outcome::Ok, latency_us: 150 };
        let mut out = [0u8; 64];
        let len = frame::encode(MsgId::NativeReport, &report, &mut out).unwrap();
        self.socket.send(&out[..len]).unwrap();
        host
    }
}

#[test]
fn get_host_report_a_route_push_and_a_flush_allocate_nothing_in_the_agent() {
    let routes = MemoryRoutes::new();
    let hosts =
        |last: u8| -> Vec<SocketAddr> { (1..=3).map(|i| SocketAddr::from(([10, 9, last, i], 80))).collect() };
    routes.set_route((1001, 1), &hosts(1));
    let mut dns_config = DnsConfig::new(loopback());
    dns_config.poll_interval = Duration::from_millis(20);
    let dns = Dns::start(dns_config, Box::new(routes.clone())).unwrap();
    let stored = MemoryStats::new();
    let store = stored.clone();
    let reporter =
        Reporter::start(ReporterConfig::new(loopback()), move |_| Box::new(store.clone())).unwrap();
    let mut config = AgentDaemonConfig::new(vec![dns.local_addr()], vec![reporter.local_addr()]);
    config.api = vec!["127.0.0.1:0".parse().unwrap()];
    let agent = AgentDaemon::start(config).unwrap();
    // Patient: the machine may be busy, and this test is about allocations, not time.
    let client = lars_std::client::Client::new(lars_std::client::ClientConfig {
        agent: agent.api_addrs().to_vec(),
        timeout: Duration::from_secs(1),
        retries: 5,
        ..Default::default()
    });
    client.reg_init(1001, 1, 100).unwrap();
    let mut caller = Caller::new(agent.api_addrs()[0]);

    // Warm up every path: calls, pushes, flushes (early ones, after `report_after` results,
    // too), until the queues have grown to what this load needs.
    for _ in 0..20_000 {
        caller.call();
    }
    routes.set_route((1001, 1), &hosts(2));
    eventually("the first push arrived", || hosts(2).contains(&caller.call()));
    eventually("a flush went out", || agent.stats().stats_frames > 0);
    let frames = agent.stats().stats_frames;
    eventually("another flush went out", || agent.stats().stats_frames > frames);

    let before = allocations_of("lars-agent");
    WATCHED.store(thread_named("lars-agent"), Ordering::Relaxed);
    for _ in 0..10_000 {
        caller.call();
    }
    routes.set_route((1001, 1), &hosts(3));
    eventually("the second push arrived", || hosts(3).contains(&caller.call()));
    let frames = agent.stats().stats_frames;
    eventually("a flush went out", || agent.stats().stats_frames > frames);
    let after = allocations_of("lars-agent");
    WATCHED.store(0, Ordering::Relaxed);
    let first = FIRST_ALLOCATION.lock().unwrap().take().unwrap_or_default();
    assert_eq!(
        after - before,
        0,
        "the agent allocated {} times in steady state; the first: {first}",
        after - before
    );
    assert!(agent.stats().get_host >= 12_000 && !stored.rows().is_empty());
}
