//! Peers that speak only the original Lars protocol, written from the protocol (msgids 1–8,
//! LARS-REFERENCE §2) as the original C++ parts behave: an original lars_dns, lars_reporter and
//! agent. Like the originals, they ignore a msgid they do not know (the C++ router logs
//! "msgid N is not register!" and carries on), so a native `Hello` goes unanswered.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lars_core::wire::frame::{self, MAX_BODY};
use lars_core::wire::{Decode, Frame, List, MsgId, lars};

/// A route key.
pub type Key = (i32, i32);

/// Reads one frame from a blocking stream: `(msgid, body)`.
fn read_frame(stream: &mut TcpStream) -> io::Result<(u32, Vec<u8>)> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let msgid = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_BODY {
        return Err(io::Error::other("data format error"));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body)?;
    Ok((msgid, body))
}

/// A TCP server thread per connection until `stop`.
fn serve(
    stop: Arc<AtomicBool>,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = Arc::new(handle);
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
                    let (handle, stop) = (Arc::clone(&handle), Arc::clone(&stop));
                    std::thread::spawn(move || {
                        // The handler returns when the peer goes or `stop` is seen.
                        let _ = stop;
                        handle(stream)
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok((addr, thread))
}

/// Reads frames until the peer goes or `stop`, giving each to `on_frame`; read timeouts are
/// only a chance to look at `stop`.
fn each_frame(
    mut stream: TcpStream,
    stop: &AtomicBool,
    mut on_frame: impl FnMut(&mut TcpStream, u32, &[u8]),
) {
    loop {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match read_frame(&mut stream) {
            Ok((msgid, body)) => on_frame(&mut stream, msgid, &body),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// An original lars_dns: answers msgid 1 with msgid 2 from its table, ignores the rest.
pub struct OriginalDns {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its routes.
    pub routes: Arc<Mutex<BTreeMap<Key, Vec<SocketAddrV4>>>>,
    /// Frames with a msgid it does not know (a native `Hello`, say).
    pub unknown: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl OriginalDns {
    /// Starts it with `routes`.
    pub fn start(routes: BTreeMap<Key, Vec<SocketAddrV4>>) -> OriginalDns {
        let stop = Arc::new(AtomicBool::new(false));
        let routes = Arc::new(Mutex::new(routes));
        let unknown = Arc::new(AtomicU64::new(0));
        let (table, seen, flag) = (Arc::clone(&routes), Arc::clone(&unknown), Arc::clone(&stop));
        let (addr, _) = serve(Arc::clone(&stop), move |stream| {
            each_frame(stream, &flag, |stream, msgid, body| {
                if msgid != MsgId::GetRouteRequest.as_u32() {
                    seen.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let Ok(request) = lars::GetRouteRequest::parse(body) else { return };
                let hosts =
                    table.lock().unwrap().get(&(request.modid, request.cmdid)).cloned().unwrap_or_default();
                let answer = lars::GetRouteResponse {
                    modid: request.modid,
                    cmdid: request.cmdid,
                    hosts: List::from_slice(&hosts),
                };
                let mut out = vec![0; 70_000];
                let n = frame::encode(MsgId::GetRouteResponse, &answer, &mut out).unwrap();
                let _ = stream.write_all(&out[..n]);
            })
        })
        .expect("start the original lars_dns");
        OriginalDns { addr, routes, unknown, stop }
    }
}

impl Drop for OriginalDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A `ServerCallStatus` row as the original lars_reporter writes it: the key is
/// `(modid, cmdid, host, caller)`, the value `(succ, err, overload)`, replaced by each report.
pub type StatusRows = BTreeMap<(i32, i32, SocketAddrV4, i32), (u32, u32, bool)>;

/// An original lars_reporter: takes msgid 3 and replaces the rows it names; never answers.
pub struct OriginalReporter {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it stored.
    pub rows: Arc<Mutex<StatusRows>>,
    /// Frames with a msgid it does not know.
    pub unknown: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl OriginalReporter {
    /// Starts it.
    pub fn start() -> OriginalReporter {
        let stop = Arc::new(AtomicBool::new(false));
        let rows = Arc::new(Mutex::new(StatusRows::new()));
        let unknown = Arc::new(AtomicU64::new(0));
        let (table, seen, flag) = (Arc::clone(&rows), Arc::clone(&unknown), Arc::clone(&stop));
        let (addr, _) = serve(Arc::clone(&stop), move |stream| {
            each_frame(stream, &flag, |_, msgid, body| {
                if msgid != MsgId::ReportStatusRequest.as_u32() {
                    seen.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let Ok(report) = lars::ReportStatusRequest::parse(body) else { return };
                let mut table = table.lock().unwrap();
                for result in &report.results {
                    let key = (report.modid, report.cmdid, result.host, report.caller);
                    table.insert(key, (result.succ, result.err, result.overload));
                }
            })
        })
        .expect("start the original lars_reporter");
        OriginalReporter { addr, rows, unknown, stop }
    }
}

impl Drop for OriginalReporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A report an original agent received: `(modid, cmdid, host, retcode)`.
pub type Reported = (i32, i32, SocketAddrV4, i32);

/// An original lars agent's API port: get_host (4 → 5) round robin over a fixed route,
/// report (6), get_route (7 → 8); every other msgid is ignored.
pub struct OriginalAgent {
    /// Its UDP port.
    pub addr: SocketAddr,
    /// Reports received.
    pub reports: Arc<Mutex<Vec<Reported>>>,
    /// Datagrams with a msgid it does not know.
    pub unknown: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl OriginalAgent {
    /// Starts it with one route.
    pub fn start(key: Key, hosts: Vec<SocketAddrV4>) -> OriginalAgent {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let unknown = Arc::new(AtomicU64::new(0));
        let (flag, received, seen) = (Arc::clone(&stop), Arc::clone(&reports), Arc::clone(&unknown));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            let mut out = vec![0u8; 70_000];
            let mut next = 0usize;
            while !flag.load(Ordering::Acquire) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Ok(frame) = Frame::parse_datagram(&buf[..n], MAX_BODY) else { continue };
                let written = match frame.msgid {
                    MsgId::GetHostRequest => {
                        let Ok(r) = lars::GetHostRequest::parse(frame.body) else { continue };
                        let host = ((r.modid, r.cmdid) == key).then(|| {
                            next += 1;
                            hosts[next % hosts.len()]
                        });
                        let retcode = if host.is_some() { 0 } else { 3 };
                        let answer = lars::GetHostResponse {
                            seq: r.seq,
                            modid: r.modid,
                            cmdid: r.cmdid,
                            retcode,
                            host,
                        };
                        frame::encode(MsgId::GetHostResponse, &answer, &mut out)
                    }
                    MsgId::ReportRequest => {
                        if let Ok(r) = lars::ReportRequest::parse(frame.body)
                            && let Some(host) = r.host
                        {
                            received.lock().unwrap().push((r.modid, r.cmdid, host, r.retcode));
                        }
                        continue;
                    }
                    MsgId::ApiGetRouteRequest => {
                        let Ok(r) = lars::GetRouteRequest::parse(frame.body) else { continue };
                        let known: &[SocketAddrV4] = if (r.modid, r.cmdid) == key { &hosts } else { &[] };
                        let answer = lars::GetRouteResponse {
                            modid: r.modid,
                            cmdid: r.cmdid,
                            hosts: List::from_slice(known),
                        };
                        frame::encode(MsgId::ApiGetRouteResponse, &answer, &mut out)
                    }
                    _ => {
                        seen.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if let Ok(n) = written {
                    let _ = socket.send_to(&out[..n], from);
                }
            }
        });
        OriginalAgent { addr, reports, unknown, stop }
    }
}

impl Drop for OriginalAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
