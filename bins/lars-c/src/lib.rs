//! liblarsclient: the Rust client (`lars_std::client`) behind a C ABI, declared in
//! `include/lars.h` (generated from this file by cbindgen).
//!
//! Every function returns a status code (`LARS_OK` or a `LARS_E*`), and on failure leaves a
//! message for `lars_last_error()` on the calling thread. Handles are opaque pointers. A
//! `lars_client` may be shared by any number of threads, like `Client`; a `lars_lease` may be
//! too (it holds its lease behind a mutex), though a lease per thread is faster. No panic
//! crosses the boundary: each call runs under `catch_unwind` and a panic becomes
//! `LARS_EINTERNAL`. All pointer handling is in `src/raw.rs`, the crate's only `unsafe` blocks.
// Each export allows `unsafe_code`, which the compiler counts `#[unsafe(no_mangle)]` as, and so
// does `raw`; nothing else here may (ARCHITECTURE.md invariant 5; the tidy test
// `unsafe_code_lives_only_in_the_listed_files` keeps this file to exports).

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Duration;

use lars_std::client::Outcome;
use lars_std::client::{Client, ClientConfig, ClientError, Lease};

// The pointer handling (ARCHITECTURE.md invariant 5).
#[allow(unsafe_code)]
mod raw;

/// Success.
pub const LARS_OK: c_int = 0;
/// Every host of the route is overloaded (the original's code 1): back off or degrade.
pub const LARS_EOVERLOADED: c_int = 1;
/// The agent could not serve the request (the original's code 2): its route table is full, the
/// route has no host its protocol can carry, or (from an original agent) more than that
/// protocol carries was asked (a hash key, an IPv6 host, a lease); or the route has more hosts
/// than a lease holds. The message says which.
pub const LARS_EAGENT: c_int = 2;
/// No such route, or the agent is still fetching it (the original's code 3).
pub const LARS_ENOROUTE: c_int = 3;
/// No answer from the agent after every retry: is it running?
pub const LARS_ETIMEOUT: c_int = 4;
/// The agent answered something that does not decode, or breaks the protocol (a success
/// without a host, a return code that answer does not carry).
pub const LARS_EMALFORMED: c_int = 5;
/// A socket error.
pub const LARS_EIO: c_int = 6;
/// An argument is NULL, out of range or does not parse; the message says which.
pub const LARS_EINVALID: c_int = 7;
/// A bug in lars (a panic, caught at the boundary, or a request it could not encode); the
/// message has its text.
pub const LARS_EINTERNAL: c_int = 8;

/// The call succeeded.
pub const LARS_OUTCOME_OK: c_int = 0;
/// The call failed.
pub const LARS_OUTCOME_FAIL: c_int = 1;
/// The host refused the call because it is overloaded.
pub const LARS_OUTCOME_OVERLOAD: c_int = 2;

/// Room for any IPv4 or IPv6 address in text and its NUL (INET6_ADDRSTRLEN).
pub const LARS_IP_LEN: usize = 46;

/// A client of the local agent. Thread-safe: share one between threads.
pub struct LarsClient(Client);

/// A route leased in process: picks cost no round trip. Thread-safe (behind a mutex), but give
/// each hot thread its own for speed.
pub struct LarsLease(Mutex<Lease>);

/// A host: its address in text (NUL-terminated), its port, and its weight in the route (0 when
/// it came from `lars_get_host`, which does not say).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LarsHost {
    /// `"10.0.0.1"` or `"2001:db8::1"`, NUL-terminated.
    pub ip: [c_char; LARS_IP_LEN],
    /// The port.
    pub port: u16,
    /// The host's weight in its route; 0 from `lars_get_host`.
    pub weight: u32,
}

impl LarsHost {
    fn new(addr: SocketAddr, weight: u32) -> LarsHost {
        let mut ip = [0 as c_char; LARS_IP_LEN];
        let mut text = [0u8; LARS_IP_LEN];
        let len = {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut text[..LARS_IP_LEN - 1]);
            // An IPv6 address in text is at most 45 bytes, so this cannot run out of room.
            let _ = write!(cursor, "{}", addr.ip());
            cursor.position() as usize
        };
        for (to, from) in ip.iter_mut().zip(&text[..len]) {
            *to = *from as c_char;
        }
        LarsHost { ip, port: addr.port(), weight }
    }

    fn addr(&self) -> Result<SocketAddr, Error> {
        let end = self
            .ip
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| Error::invalid("host ip is not NUL-terminated"))?;
        // On the stack: a report is on the hot path.
        let mut bytes = [0u8; LARS_IP_LEN];
        for (to, &from) in bytes.iter_mut().zip(&self.ip[..end]) {
            *to = from as u8;
        }
        let text = std::str::from_utf8(&bytes[..end]).map_err(|_| Error::invalid("host ip is not UTF-8"))?;
        let ip: IpAddr =
            text.parse().map_err(|_| Error::invalid(format!("host ip `{text}` is not an IP address")))?;
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// A failure on its way to C: a status code and a message.
pub(crate) struct Error {
    code: c_int,
    message: String,
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error { code: LARS_EINVALID, message: message.into() }
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Error {
        let code = match e {
            ClientError::Overloaded => LARS_EOVERLOADED,
            ClientError::NoRoute => LARS_ENOROUTE,
            ClientError::Refused { .. } | ClientError::NeedsNative(_) | ClientError::RouteTooLarge { .. } => {
                LARS_EAGENT
            }
            ClientError::Timeout | ClientError::DaemonTimeout { .. } | ClientError::Unreachable { .. } => {
                LARS_ETIMEOUT
            }
            ClientError::Malformed(_)
            | ClientError::DaemonMalformed { .. }
            | ClientError::ProtocolViolation(_)
            | ClientError::Unexpected(_) => LARS_EMALFORMED,
            ClientError::Io(_) => LARS_EIO,
            ClientError::NoAgent => LARS_EINVALID,
            ClientError::Unencodable(_) => LARS_EINTERNAL,
            // A kind of failure newer than this mapping: the agent's side, as before.
            _ => LARS_EAGENT,
        };
        Error { code, message: lars_std::client::with_causes(&e) }
    }
}

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Runs one exported call: its error, or a panic, becomes a status code and a message.
fn call(body: impl FnOnce() -> Result<(), Error>) -> c_int {
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return LARS_OK,
        Ok(Err(error)) => error,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Error { code: LARS_EINTERNAL, message: format!("internal error (please report): {text}") }
        }
    };
    let message = CString::new(error.message.replace('\0', " ")).unwrap_or_default();
    // `try_with`: during a thread's teardown the slot may be gone; the code still says what failed.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = message);
    error.code
}

fn outcome(code: c_int) -> Result<Outcome, Error> {
    match code {
        LARS_OUTCOME_OK => Ok(Outcome::Ok),
        LARS_OUTCOME_FAIL => Ok(Outcome::Fail),
        LARS_OUTCOME_OVERLOAD => Ok(Outcome::Overload),
        other => Err(Error::invalid(format!(
            "outcome {other} is none of LARS_OUTCOME_OK (0), LARS_OUTCOME_FAIL (1), LARS_OUTCOME_OVERLOAD (2)"
        ))),
    }
}

fn agents(list: &str) -> Result<Vec<SocketAddr>, Error> {
    let agents: Vec<SocketAddr> = list
        .split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| Error::invalid(format!("agent address `{}` is not IP:PORT", a.trim())))
        })
        .collect::<Result<_, _>>()?;
    Ok(agents)
}

/// The message of the calling thread's last failed call (empty if none failed). Valid until
/// the thread's next failed call; never NULL.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_last_error() -> *const c_char {
    LAST_ERROR.try_with(|last| last.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// The name of a status code (`"LARS_ETIMEOUT"`), or `"LARS_E?"` for an unknown one. Never NULL.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_status_name(status: c_int) -> *const c_char {
    let name: &'static [u8] = match status {
        LARS_OK => b"LARS_OK\0",
        LARS_EOVERLOADED => b"LARS_EOVERLOADED\0",
        LARS_EAGENT => b"LARS_EAGENT\0",
        LARS_ENOROUTE => b"LARS_ENOROUTE\0",
        LARS_ETIMEOUT => b"LARS_ETIMEOUT\0",
        LARS_EMALFORMED => b"LARS_EMALFORMED\0",
        LARS_EIO => b"LARS_EIO\0",
        LARS_EINVALID => b"LARS_EINVALID\0",
        LARS_EINTERNAL => b"LARS_EINTERNAL\0",
        _ => b"LARS_E?\0",
    };
    name.as_ptr().cast()
}

/// Creates a client in `*out`. `agents` is the agent's API endpoints, comma-separated
/// (`"127.0.0.1:8888,127.0.0.1:8889,127.0.0.1:8890"`), or NULL for that default; a route's
/// requests go to endpoint `(modid + cmdid) mod n`. Each attempt waits `timeout_ms` (0: the
/// default, 200 ms) and failed attempts are retried `retries` times. Free with
/// `lars_client_free`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_client_new(
    agents: *const c_char,
    timeout_ms: u32,
    retries: u32,
    out: *mut *mut LarsClient,
) -> c_int {
    call(|| {
        let mut config = ClientConfig::default();
        if !agents.is_null() {
            config.agent = self::agents(raw::string(agents, "agents")?)?;
        }
        if timeout_ms > 0 {
            config.timeout = Duration::from_millis(u64::from(timeout_ms));
        }
        config.retries = retries;
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        raw::write(out, raw::into_handle(LarsClient(Client::new(config))), "out")
    })
}

/// Frees a client (NULL is ignored). Leases taken from it stay valid.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_client_free(client: *mut LarsClient) {
    let _ = call(|| {
        raw::free_handle(client);
        Ok(())
    });
}

/// A host for the next call to `(modid, cmdid)`, in `*host`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_get_host(
    client: *const LarsClient,
    modid: i32,
    cmdid: i32,
    host: *mut LarsHost,
) -> c_int {
    call(|| {
        let client = raw::handle(client, "client")?;
        let addr = client.0.get_host(modid, cmdid, None)?;
        raw::write(host, LarsHost::new(addr, 0), "host")
    })
}

/// Like `lars_get_host`, with an affinity key: consistent-hash routes give the same key the
/// same host.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_get_host_keyed(
    client: *const LarsClient,
    modid: i32,
    cmdid: i32,
    key: u64,
    host: *mut LarsHost,
) -> c_int {
    call(|| {
        let client = raw::handle(client, "client")?;
        let addr = client.0.get_host(modid, cmdid, Some(key))?;
        raw::write(host, LarsHost::new(addr, 0), "host")
    })
}

/// Reports how a call to `host` went: `outcome` is a `LARS_OUTCOME_*`, `latency_us` the call's
/// latency in microseconds. Fire and forget: only a local send error fails.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_report(
    client: *const LarsClient,
    modid: i32,
    cmdid: i32,
    host: *const LarsHost,
    outcome: c_int,
    latency_us: u32,
) -> c_int {
    call(|| {
        let client = raw::handle(client, "client")?;
        let addr = raw::read(host, "host")?.addr()?;
        let outcome = self::outcome(outcome)?;
        client.0.report(modid, cmdid, addr, outcome, Duration::from_micros(u64::from(latency_us)))?;
        Ok(())
    })
}

/// Every host of `(modid, cmdid)`: up to `capacity` into `hosts`, their number into `*count`
/// and the route's version into `*version` (NULL if unwanted). If the route has more than
/// `capacity` hosts, nothing is copied, `*count` says how many there are, and the result is
/// `LARS_EINVALID`: call again with room for them.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_get_route(
    client: *const LarsClient,
    modid: i32,
    cmdid: i32,
    hosts: *mut LarsHost,
    capacity: usize,
    count: *mut usize,
    version: *mut u64,
) -> c_int {
    call(|| {
        let client = raw::handle(client, "client")?;
        let route = client.0.get_route(modid, cmdid)?;
        let all: Vec<LarsHost> = route.hosts.iter().map(|h| LarsHost::new(h.addr, h.weight)).collect();
        raw::write(count, all.len(), "count")?;
        if !version.is_null() {
            raw::write(version, route.version, "version")?;
        }
        raw::write_array(hosts, capacity, &all, "hosts")
    })
}

/// Makes the agent fetch `(modid, cmdid)` before the first `lars_get_host` (the original's
/// `reg_init`): asks up to `attempts` times, 50 ms apart, until the route has hosts.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_reg_init(client: *const LarsClient, modid: i32, cmdid: i32, attempts: u32) -> c_int {
    call(|| {
        raw::handle(client, "client")?.0.reg_init(modid, cmdid, attempts)?;
        Ok(())
    })
}

/// Leases `(modid, cmdid)` into `*out`: its hosts are held in process and picked locally, and
/// the results go to the agent as summaries about every 100 ms. Waits for the agent to have
/// the route as long as one call may. Free with `lars_lease_free`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_new(
    client: *const LarsClient,
    modid: i32,
    cmdid: i32,
    out: *mut *mut LarsLease,
) -> c_int {
    call(|| {
        let client = raw::handle(client, "client")?;
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let lease = client.0.lease(modid, cmdid)?;
        raw::write(out, raw::into_handle(LarsLease(Mutex::new(lease))), "out")
    })
}

/// Sends the lease's last counts to the agent and frees it (NULL is ignored).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_free(lease: *mut LarsLease) {
    let _ = call(|| {
        raw::free_handle(lease);
        Ok(())
    });
}

fn with_lease<T>(
    lease: *const LarsLease,
    body: impl FnOnce(&mut Lease) -> Result<T, Error>,
) -> Result<T, Error> {
    let lease = raw::handle(lease, "lease")?;
    // A panic under the lock was caught at the boundary; the lease's state is still whole
    // (each of its calls is a pick or a count), so a poisoned lock is used as it is.
    let mut guard = lease.0.lock().unwrap_or_else(|p| p.into_inner());
    body(&mut guard)
}

/// A host for the next call, picked in process, in `*host`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_get_host(lease: *const LarsLease, host: *mut LarsHost) -> c_int {
    call(|| {
        let addr = with_lease(lease, |lease| Ok(lease.get_host(None)?))?;
        raw::write(host, LarsHost::new(addr, 0), "host")
    })
}

/// Like `lars_lease_get_host`, with an affinity key for consistent-hash policies.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_get_host_keyed(lease: *const LarsLease, key: u64, host: *mut LarsHost) -> c_int {
    call(|| {
        let addr = with_lease(lease, |lease| Ok(lease.get_host(Some(key))?))?;
        raw::write(host, LarsHost::new(addr, 0), "host")
    })
}

/// Reports how a call to `host` went: to the lease's balancer at once, to the agent with the
/// next summary. `outcome` is a `LARS_OUTCOME_*`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_report(
    lease: *const LarsLease,
    host: *const LarsHost,
    outcome: c_int,
    latency_us: u32,
) -> c_int {
    call(|| {
        let addr = raw::read(host, "host")?.addr()?;
        let outcome = self::outcome(outcome)?;
        with_lease(lease, |lease| {
            lease.report(addr, outcome, Duration::from_micros(u64::from(latency_us)));
            Ok(())
        })
    })
}

/// Sends the lease's call counts to the agent now.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_flush(lease: *const LarsLease) -> c_int {
    call(|| with_lease(lease, |lease| Ok(lease.flush()?)))
}

/// The store's version of the hosts the lease is using, in `*version`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn lars_lease_version(lease: *const LarsLease, version: *mut u64) -> c_int {
    call(|| {
        let value = with_lease(lease, |lease| Ok(lease.version()))?;
        raw::write(version, value, "version")
    })
}

#[cfg(test)]
mod tests;
