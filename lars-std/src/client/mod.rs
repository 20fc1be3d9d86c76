//! The client API: `get_host`, `report`, `get_route` and `reg_init` against the local agent.
//!
//! Safe to share between threads: each call borrows a UDP socket from a small pool (one per
//! agent port), so concurrent calls never read each other's replies. Every wait has a timeout
//! and is retried (the original blocked forever, D-API-1); a reply is matched to its request by
//! its exact sequence number (the original's `<` broke at wrap-around, D-API-2).
//!
//! A lars agent is spoken to in the native codec, so IPv6 hosts, hash keys, call latencies and
//! leases work. An original Lars agent knows only msgids 4–8: with [`CodecChoice::Auto`] (the
//! default) the first call asks the agent for its counters in the native codec, and if that
//! goes unanswered, asks for the route in the Lars codec; whichever is answered fixes the codec
//! for the client's lifetime.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

pub use lars_core::lb::{LbConfig, PolicyKind};
pub use lars_core::time::Duration as CoreDuration;
use lars_core::wire::native;
pub use lars_core::wire::native::{Change, HostDecision, Outcome, Reason, WeightedHost};
pub use lars_core::wire::{Codec, CodecChoice};
use lars_core::wire::{Decode, Encode, Frame, MsgId, RetCode, frame, lars};

mod error;
mod lease;

pub use error::{ClientError, Refusal, Violation, with_causes};
pub use lease::{Lease, LeaseConfig};

/// How long `reg_init` waits between asking for a route the agent is still fetching.
pub const REG_INIT_SPACING: Duration = Duration::from_millis(50);

/// Where the agent is and how patient to be.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The agent's API endpoints; a route's requests go to `(modid + cmdid) mod n`.
    pub agent: Vec<SocketAddr>,
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// How [`Lease`]s balance and refresh.
    pub lease: LeaseConfig,
    /// What to speak to the agent: native (a lars agent), Lars (an original Lars agent), or
    /// whichever it answers.
    pub codec: CodecChoice,
}

impl Default for ClientConfig {
    /// The agent on 127.0.0.1:8888-8890, 200 ms per attempt, 2 retries.
    fn default() -> Self {
        ClientConfig {
            agent: (8888..=8890).map(|port| SocketAddr::from(([127, 0, 0, 1], port))).collect(),
            timeout: Duration::from_millis(200),
            retries: 2,
            lease: LeaseConfig::default(),
            codec: CodecChoice::Auto,
        }
    }
}

/// A route as the agent holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The store's version of these hosts.
    pub version: u64,
    /// The hosts.
    pub hosts: Vec<WeightedHost>,
}

/// A client of the local agent.
///
/// # Examples
///
/// ```no_run
/// use std::time::Instant;
/// use lars_std::client::{Client, ClientConfig, ClientError, Outcome};
///
/// let client = Client::new(ClientConfig::default()); // the agent on 127.0.0.1:8888-8890
/// client.reg_init(1001, 1, 20)?; // wait until the agent holds the route
/// let host = client.get_host(1001, 1, None)?;
/// let start = Instant::now();
/// // ... call `host` ...
/// client.report(1001, 1, host, Outcome::Ok, start.elapsed())?;
/// # Ok::<(), ClientError>(())
/// ```
pub struct Client {
    config: ClientConfig,
    pools: Vec<Mutex<Vec<UdpSocket>>>,
    seq: AtomicU32,
    /// The codec the agent answered: [`UNKNOWN`], or a `Codec` as `u8`.
    codec: AtomicU8,
}

const UNKNOWN: u8 = 0;
const NATIVE: u8 = 1;
const LARS: u8 = 2;

impl Client {
    /// A client for the agent at `config.agent`.
    pub fn new(config: ClientConfig) -> Client {
        let pools = config.agent.iter().map(|_| Mutex::new(Vec::new())).collect();
        let codec = match config.codec {
            CodecChoice::Auto => UNKNOWN,
            CodecChoice::Fixed(Codec::Native) => NATIVE,
            CodecChoice::Fixed(Codec::Lars) => LARS,
        };
        Client { config, pools, seq: AtomicU32::new(1), codec: AtomicU8::new(codec) }
    }

    /// The codec the agent speaks: known from configuration or an earlier call, or found out
    /// now (see the module docs), asking about `(modid, cmdid)`.
    pub fn codec(&self, modid: i32, cmdid: i32) -> Result<Codec, ClientError> {
        match self.codec.load(Ordering::Relaxed) {
            NATIVE => return Ok(Codec::Native),
            LARS => return Ok(Codec::Lars),
            _ => {}
        }
        let codec = self.with_socket(modid, cmdid, |socket| self.probe(socket, modid, cmdid))?;
        self.codec.store(if codec == Codec::Native { NATIVE } else { LARS }, Ordering::Relaxed);
        Ok(codec)
    }

    fn port_index(&self, modid: i32, cmdid: i32) -> usize {
        (i64::from(modid) + i64::from(cmdid)).rem_euclid(self.config.agent.len().max(1) as i64) as usize
    }

    /// The agent endpoint that serves `(modid, cmdid)`.
    fn agent_for(&self, modid: i32, cmdid: i32) -> Result<SocketAddr, ClientError> {
        self.config.agent.get(self.port_index(modid, cmdid)).copied().ok_or(ClientError::NoAgent)
    }

    /// Leases `(modid, cmdid)`: its hosts are held in process and picked locally, and the
    /// results go to the agent as periodic summaries (see [`Lease`]). Waits for the first copy
    /// of the route like [`Client::get_route`].
    pub fn lease(&self, modid: i32, cmdid: i32) -> Result<Lease, ClientError> {
        Lease::new(self, modid, cmdid)
    }

    /// Runs `call` with a pooled socket connected to the route's agent port.
    fn with_socket<T>(
        &self,
        modid: i32,
        cmdid: i32,
        call: impl FnOnce(&UdpSocket) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let index = self.port_index(modid, cmdid);
        let agent = self.agent_for(modid, cmdid)?;
        let pooled = self.pools[index].lock().unwrap_or_else(|p| p.into_inner()).pop();
        let socket = match pooled {
            Some(socket) => socket,
            None => {
                // The unspecified address: `connect` picks the source (loopback for a local agent,
                // an interface address for a gateway node on the network).
                let local: SocketAddr =
                    if agent.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let socket = UdpSocket::bind(local)?;
                socket.connect(agent)?;
                socket.set_read_timeout(Some(self.config.timeout))?;
                socket
            }
        };
        let result = call(&socket);
        // A socket whose call failed may still receive a late answer; the next call skips it
        // by its sequence number, so it can go back to the pool.
        self.pools[index].lock().unwrap_or_else(|p| p.into_inner()).push(socket);
        result
    }

    /// Finds out what the agent speaks. Each attempt asks for the agent's counters natively
    /// (every lars agent answers); from the second attempt on it also asks for the route in
    /// the Lars codec (an original agent answers that, and nothing native). A lars agent
    /// answers in the order it was asked, so a native answer comes before any Lars one: a Lars
    /// answer that comes first is from an original agent, however slow a lars agent is. (That
    /// holds where datagrams arrive in order, as on loopback, where agents run; for an agent
    /// across a network that may reorder them, set the codec.)
    fn probe(&self, socket: &UdpSocket, modid: i32, cmdid: i32) -> Result<Codec, ClientError> {
        let seq = self.next_seq();
        let mut native_probe = [0u8; 32];
        let native_len = frame::encode(MsgId::StatsRequest, &native::StatsRequest { seq }, &mut native_probe)
            .map_err(ClientError::Unencodable)?;
        let mut lars_probe = [0u8; 32];
        let lars_len = frame::encode(
            MsgId::ApiGetRouteRequest,
            &lars::GetRouteRequest { modid, cmdid },
            &mut lars_probe,
        )
        .map_err(ClientError::Unencodable)?;
        let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
        for attempt in 0..self.attempts().max(2) {
            send(socket, &native_probe[..native_len])?;
            if attempt > 0 {
                send(socket, &lars_probe[..lars_len])?;
            }
            while let Some(n) = self.receive(socket, &mut buf)? {
                let Ok(frame) = Frame::parse_datagram(&buf[..n], frame::MAX_BODY) else { continue };
                match frame.msgid {
                    MsgId::StatsResponse
                        if native::StatsResponse::parse(frame.body).is_ok_and(|r| r.seq == seq) =>
                    {
                        return Ok(Codec::Native);
                    }
                    MsgId::ApiGetRouteResponse
                        if lars::GetRouteResponse::parse(frame.body)
                            .is_ok_and(|r| (r.modid, r.cmdid) == (modid, cmdid)) =>
                    {
                        return Ok(Codec::Lars);
                    }
                    _ => {}
                }
            }
        }
        Err(ClientError::Timeout)
    }

    /// One datagram within the socket's timeout: `None` when none came (or nothing listens,
    /// after waiting out the timeout: the agent may be starting).
    fn receive(&self, socket: &UdpSocket, buf: &mut [u8]) -> Result<Option<usize>, ClientError> {
        match socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(self.config.timeout);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `request` and waits for an answer `is_ours` accepts (matching its seq), retrying
    /// on timeout. Returns the answer's body range in `buf`.
    fn request(
        &self,
        socket: &UdpSocket,
        msgid: MsgId,
        request: &impl Encode,
        reply_id: MsgId,
        buf: &mut [u8],
        is_ours: impl Fn(&[u8]) -> Result<bool, lars_core::wire::Error>,
    ) -> Result<std::ops::Range<usize>, ClientError> {
        let mut out = [0u8; 256];
        let len = frame::encode(msgid, request, &mut out).map_err(ClientError::Unencodable)?;
        for _ in 0..self.attempts() {
            send(socket, &out[..len])?;
            while let Some(n) = self.receive(socket, buf)? {
                let Ok(frame) = Frame::parse_datagram(&buf[..n], frame::MAX_BODY) else { continue };
                // Answers to earlier, timed-out calls are skipped by their seq.
                if frame.msgid == reply_id && is_ours(frame.body).map_err(ClientError::Malformed)? {
                    return Ok(frame::HEADER_LEN..n);
                }
            }
        }
        Err(ClientError::Timeout)
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A host for the next call to `(modid, cmdid)`. `key` pins a caller to a host on
    /// consistent-hash routes.
    pub fn get_host(&self, modid: i32, cmdid: i32, key: Option<u64>) -> Result<SocketAddr, ClientError> {
        if self.codec(modid, cmdid)? == Codec::Lars {
            if key.is_some() {
                return Err(ClientError::NeedsNative("hash key"));
            }
            return self.lars_get_host(modid, cmdid);
        }
        let seq = self.next_seq();
        let request = native::GetHostRequest { seq, modid, cmdid, key };
        self.with_socket(modid, cmdid, |socket| {
            let mut buf = [0u8; 512];
            let is_ours = |body: &[u8]| native::GetHostResponse::parse(body).map(|r| r.seq == seq);
            let body = self.request(
                socket,
                MsgId::NativeGetHostRequest,
                &request,
                MsgId::NativeGetHostResponse,
                &mut buf,
                is_ours,
            )?;
            let reply = native::GetHostResponse::parse(&buf[body]).map_err(ClientError::Malformed)?;
            host_or_error(reply.code, reply.host, Codec::Native)
        })
    }

    fn attempts(&self) -> u32 {
        self.config.retries.saturating_add(1)
    }

    /// `get_host` in the Lars codec (msgids 4 and 5), for an original agent.
    fn lars_get_host(&self, modid: i32, cmdid: i32) -> Result<SocketAddr, ClientError> {
        let seq = self.next_seq();
        let request = lars::GetHostRequest { seq, modid, cmdid };
        self.with_socket(modid, cmdid, |socket| {
            let mut buf = [0u8; 512];
            let is_ours = |body: &[u8]| {
                lars::GetHostResponse::parse(body).map(|r| (r.seq, r.modid, r.cmdid) == (seq, modid, cmdid))
            };
            let body = self.request(
                socket,
                MsgId::GetHostRequest,
                &request,
                MsgId::GetHostResponse,
                &mut buf,
                is_ours,
            )?;
            let reply = lars::GetHostResponse::parse(&buf[body]).map_err(ClientError::Malformed)?;
            let code = RetCode::from_i32(reply.retcode)
                .ok_or(ClientError::ProtocolViolation(Violation::UnexpectedCode(reply.retcode)))?;
            host_or_error(code, reply.host.map(SocketAddr::V4), Codec::Lars)
        })
    }

    /// Reports how a call to `host` went. Fire and forget: only a local send error fails.
    pub fn report(
        &self,
        modid: i32,
        cmdid: i32,
        host: SocketAddr,
        outcome: Outcome,
        latency: Duration,
    ) -> Result<(), ClientError> {
        let mut out = [0u8; 128];
        let len = if self.codec(modid, cmdid)? == Codec::Lars {
            let SocketAddr::V4(v4) = host else { return Err(ClientError::NeedsNative("IPv6 host")) };
            // The original API's convention: 0 succeeded, anything else failed. No latency.
            let retcode = if outcome == Outcome::Ok { 0 } else { 1 };
            let report = lars::ReportRequest { modid, cmdid, host: Some(v4), retcode };
            frame::encode(MsgId::ReportRequest, &report, &mut out)
        } else {
            let latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
            let report = native::Report { modid, cmdid, host, outcome, latency_us };
            frame::encode(MsgId::NativeReport, &report, &mut out)
        }
        .map_err(ClientError::Unencodable)?;
        self.with_socket(modid, cmdid, |socket| {
            socket.send(&out[..len])?;
            Ok(())
        })
    }

    /// Every host of a route.
    pub fn get_route(&self, modid: i32, cmdid: i32) -> Result<Route, ClientError> {
        if self.codec(modid, cmdid)? == Codec::Lars {
            return self.lars_get_route(modid, cmdid);
        }
        let seq = self.next_seq();
        let request = native::GetRouteRequest { seq, modid, cmdid };
        self.with_socket(modid, cmdid, |socket| {
            let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
            let is_ours = |body: &[u8]| native::RouteResponse::parse(body).map(|r| r.seq == seq);
            let body = self.request(
                socket,
                MsgId::NativeGetRouteRequest,
                &request,
                MsgId::NativeRouteResponse,
                &mut buf,
                is_ours,
            )?;
            let reply = native::RouteResponse::parse(&buf[body]).map_err(ClientError::Malformed)?;
            // The agent answers a route it cannot hold as unknown: no other code is a route's.
            match reply.code {
                RetCode::Succ => Ok(Route { version: reply.version, hosts: reply.hosts.iter().collect() }),
                RetCode::NoExist => Err(ClientError::NoRoute),
                code => Err(ClientError::ProtocolViolation(Violation::UnexpectedCode(code.as_i32()))),
            }
        })
    }

    /// `get_route` in the Lars codec (msgids 7 and 8), for an original agent, which answers an
    /// unknown route and one it is still fetching with an empty list.
    fn lars_get_route(&self, modid: i32, cmdid: i32) -> Result<Route, ClientError> {
        let request = lars::GetRouteRequest { modid, cmdid };
        self.with_socket(modid, cmdid, |socket| {
            let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
            let is_ours = |body: &[u8]| {
                lars::GetRouteResponse::parse(body).map(|r| (r.modid, r.cmdid) == (modid, cmdid))
            };
            let body = self.request(
                socket,
                MsgId::ApiGetRouteRequest,
                &request,
                MsgId::ApiGetRouteResponse,
                &mut buf,
                is_ours,
            )?;
            let reply = lars::GetRouteResponse::parse(&buf[body]).map_err(ClientError::Malformed)?;
            if reply.hosts.is_empty() {
                return Err(ClientError::NoRoute);
            }
            let hosts = reply.hosts.iter().map(|addr| WeightedHost { addr: SocketAddr::V4(addr), weight: 1 });
            Ok(Route { version: 0, hosts: hosts.collect() })
        })
    }

    /// The agent's counters (`lars stats --agent`).
    pub fn agent_stats(&self) -> Result<Vec<(String, u64)>, ClientError> {
        let seq = self.next_seq();
        self.with_socket(0, 0, |socket| {
            let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
            let is_ours = |body: &[u8]| native::StatsResponse::parse(body).map(|r| r.seq == seq);
            let request = native::StatsRequest { seq };
            let (id, reply_id) = (MsgId::StatsRequest, MsgId::StatsResponse);
            let body = self.request(socket, id, &request, reply_id, &mut buf, is_ours)?;
            counters(&buf[body]).map_err(ClientError::Malformed)
        })
    }

    /// The decisions in the agent's log (the newest 1,024 at most), newest first, of one
    /// module or command's routes or of all: what its balancers did to which host, and why.
    /// Each `age_ms` counts back from the agent's answer.
    pub fn agent_decisions(
        &self,
        modid: Option<i32>,
        cmdid: Option<i32>,
    ) -> Result<Vec<HostDecision>, ClientError> {
        let mut decisions = Vec::new();
        // Pages of 16, up to the agent's whole log.
        for page in 0..lars_core::agent::DECISIONS.div_ceil(native::DECISIONS_PAGE) {
            let seq = self.next_seq();
            let request =
                native::DecisionsRequest { seq, modid, cmdid, skip: (page * native::DECISIONS_PAGE) as u32 };
            let entries = self.with_socket(0, 0, |socket| {
                let mut buf = vec![0u8; frame::HEADER_LEN + frame::MAX_BODY as usize];
                let is_ours = |body: &[u8]| native::DecisionsResponse::parse(body).map(|r| r.seq == seq);
                let (id, reply_id) = (MsgId::DecisionsRequest, MsgId::DecisionsResponse);
                let body = self.request(socket, id, &request, reply_id, &mut buf, is_ours)?;
                let response =
                    native::DecisionsResponse::parse(&buf[body]).map_err(ClientError::Malformed)?;
                Ok(response.entries.iter().collect::<Vec<_>>())
            })?;
            let last = entries.len() < native::DECISIONS_PAGE;
            decisions.extend(entries);
            if last {
                break;
            }
        }
        Ok(decisions)
    }

    /// Makes the agent fetch a route before the first `get_host` (the original's `reg_init`):
    /// asks for it up to `attempts` times, [`REG_INIT_SPACING`] apart, until it has hosts.
    pub fn reg_init(&self, modid: i32, cmdid: i32, attempts: u32) -> Result<Route, ClientError> {
        let mut last = ClientError::NoRoute;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(REG_INIT_SPACING);
            }
            match self.get_route(modid, cmdid) {
                Ok(route) => return Ok(route),
                // Only "not yet" is worth waiting for: a timeout already took every retry.
                Err(ClientError::NoRoute) => last = ClientError::NoRoute,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Sends a datagram. A refusal is an earlier datagram's ICMP "port unreachable" reported on
/// this send: nothing listens yet, which the wait for the answer handles as silence.
fn send(socket: &UdpSocket, datagram: &[u8]) -> Result<(), ClientError> {
    match socket.send(datagram) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A `get_host` answer in `codec` as a host or the error its code means.
fn host_or_error(code: RetCode, host: Option<SocketAddr>, codec: Codec) -> Result<SocketAddr, ClientError> {
    match (code, host) {
        (RetCode::Succ, Some(host)) => Ok(host),
        (code, _) => Err(ClientError::from_code(code, codec)),
    }
}

fn counters(body: &[u8]) -> Result<Vec<(String, u64)>, lars_core::wire::Error> {
    let response = native::StatsResponse::parse(body)?;
    Ok(response.counters.iter().map(|c| (c.name.to_string(), c.value)).collect())
}

/// The counters of the lars-dns or lars-reporter at `addr` (`lars stats --dns` / `--reporter`).
pub fn daemon_stats(addr: SocketAddr, timeout: Duration) -> Result<Vec<(String, u64)>, ClientError> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable_or_timeout(addr, e))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut out = [0u8; 32];
    let len = frame::encode(MsgId::StatsRequest, &native::StatsRequest { seq: 1 }, &mut out)
        .map_err(ClientError::Unencodable)?;
    stream.write_all(&out[..len])?;
    let mut header = [0u8; frame::HEADER_LEN];
    stream.read_exact(&mut header).map_err(|e| timeout_or_io(addr, e))?;
    let malformed = |cause| ClientError::DaemonMalformed { addr, cause };
    let header = frame::Header::parse(&header, frame::MAX_BODY).map_err(malformed)?;
    if header.msgid != MsgId::StatsResponse {
        return Err(ClientError::Unexpected(header.msgid));
    }
    let mut body = vec![0u8; header.len as usize];
    stream.read_exact(&mut body).map_err(|e| timeout_or_io(addr, e))?;
    counters(&body).map_err(malformed)
}

/// A connection to `addr` that waited out its timeout is [`ClientError::DaemonTimeout`]; one
/// refused (or with no way there) is [`ClientError::Unreachable`].
fn unreachable_or_timeout(addr: SocketAddr, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::DaemonTimeout { addr },
        _ => ClientError::Unreachable { addr, cause: e },
    }
}

/// A read from `addr` that waited out its timeout is [`ClientError::DaemonTimeout`]; any other
/// error is `Io`.
fn timeout_or_io(addr: SocketAddr, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::DaemonTimeout { addr },
        _ => ClientError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent at a loopback port that answers each request with what `answer` writes.
    fn fake_agent(answer: impl Fn(Frame<'_>, &mut [u8]) -> usize + Send + 'static) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut request, mut reply) = ([0u8; 512], [0u8; 512]);
            while let Ok((n, from)) = socket.recv_from(&mut request) {
                let frame = Frame::parse_datagram(&request[..n], frame::MAX_BODY).unwrap();
                let len = answer(frame, &mut reply);
                socket.send_to(&reply[..len], from).unwrap();
            }
        });
        addr
    }

    fn client(agent: SocketAddr, codec: Codec) -> Client {
        let timeout = Duration::from_millis(500);
        Client::new(ClientConfig {
            agent: vec![agent],
            timeout,
            codec: CodecChoice::Fixed(codec),
            ..ClientConfig::default()
        })
    }

    /// A native agent that answers every `get_host` with `code` and `host`.
    fn native_agent(code: RetCode, host: Option<SocketAddr>) -> Client {
        let agent = fake_agent(move |frame, reply| {
            let request = native::GetHostRequest::parse(frame.body).unwrap();
            let (seq, modid, cmdid) = (request.seq, request.modid, request.cmdid);
            let answer = native::GetHostResponse { seq, modid, cmdid, code, host };
            frame::encode(MsgId::NativeGetHostResponse, &answer, reply).unwrap()
        });
        client(agent, Codec::Native)
    }

    #[test]
    fn each_refusal_and_broken_answer_is_its_own_error() {
        let host = SocketAddr::from(([10, 0, 0, 1], 80));
        assert_eq!(native_agent(RetCode::Succ, Some(host)).get_host(1, 1, None).unwrap(), host);
        let full = native_agent(RetCode::SystemError, None).get_host(1, 1, None);
        assert!(matches!(full, Err(ClientError::Refused { reason: Refusal::TableFull })), "{full:?}");
        let hostless = native_agent(RetCode::Succ, None).get_host(1, 1, None);
        assert!(
            matches!(hostless, Err(ClientError::ProtocolViolation(Violation::SuccessWithoutHost))),
            "{hostless:?}"
        );
        let lars_agent = |retcode| {
            let agent = fake_agent(move |frame, reply| {
                let request = lars::GetHostRequest::parse(frame.body).unwrap();
                let (seq, modid, cmdid) = (request.seq, request.modid, request.cmdid);
                let answer = lars::GetHostResponse { seq, modid, cmdid, retcode, host: None };
                frame::encode(MsgId::GetHostResponse, &answer, reply).unwrap()
            });
            client(agent, Codec::Lars)
        };
        let refused = lars_agent(RetCode::SystemError.as_i32()).get_host(1, 1, None);
        assert!(matches!(refused, Err(ClientError::Refused { reason: Refusal::Unstated })), "{refused:?}");
        let unknown = lars_agent(9).get_host(1, 1, None);
        assert!(
            matches!(unknown, Err(ClientError::ProtocolViolation(Violation::UnexpectedCode(9)))),
            "{unknown:?}"
        );
    }

    #[test]
    fn a_route_answer_with_a_code_no_route_answer_carries_is_a_protocol_violation() {
        let agent = fake_agent(|frame, reply| {
            let request = native::GetRouteRequest::parse(frame.body).unwrap();
            let (seq, modid, cmdid) = (request.seq, request.modid, request.cmdid);
            let code = RetCode::Overload;
            let answer =
                native::RouteResponse { seq, modid, cmdid, code, version: 1, hosts: Default::default() };
            frame::encode(MsgId::NativeRouteResponse, &answer, reply).unwrap()
        });
        let route = client(agent, Codec::Native).get_route(1, 1);
        assert!(
            matches!(route, Err(ClientError::ProtocolViolation(Violation::UnexpectedCode(1)))),
            "{route:?}"
        );
    }

    #[test]
    fn a_daemon_not_listening_is_unreachable_and_one_that_waits_out_the_timeout_a_timeout() {
        let client = Client::new(ClientConfig { agent: Vec::new(), ..ClientConfig::default() });
        assert!(matches!(client.get_host(1, 1, None), Err(ClientError::NoAgent)));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let stats = daemon_stats(closed, Duration::from_secs(1));
        assert!(matches!(stats, Err(ClientError::Unreachable { addr, .. }) if addr == closed), "{stats:?}");
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = silent.local_addr().unwrap();
        let stats = daemon_stats(silent, Duration::from_millis(100));
        assert!(matches!(stats, Err(ClientError::DaemonTimeout { addr }) if addr == silent), "{stats:?}");
        let message = stats.unwrap_err().to_string();
        assert!(message.starts_with(&format!("no answer from {silent} in time")), "{message}");
        let timed_out = unreachable_or_timeout(closed, io::Error::from(io::ErrorKind::TimedOut));
        assert!(
            matches!(timed_out, ClientError::DaemonTimeout { addr } if addr == closed),
            "a connect timeout: {timed_out:?}"
        );
    }

    #[test]
    fn a_daemon_that_answers_garbage_is_a_malformed_answer_from_its_address() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let daemon = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; frame::HEADER_LEN];
            stream.read_exact(&mut request).unwrap();
            stream.write_all(&[0xff; frame::HEADER_LEN]).unwrap();
        });
        let stats = daemon_stats(addr, Duration::from_secs(10));
        daemon.join().unwrap();
        let Err(error) = stats else { panic!("garbage decoded: {stats:?}") };
        assert!(matches!(error, ClientError::DaemonMalformed { addr: a, .. } if a == addr), "{error:?}");
        assert_eq!(error.to_string(), format!("malformed answer from {addr}"));
        assert!(std::error::Error::source(&error).is_some(), "it keeps why");
    }
}
