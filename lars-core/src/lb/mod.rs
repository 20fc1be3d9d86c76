//! Load-balance policies (`lb` layer): which host of a route serves the next call.
//!
//! Every policy is allocation-free, deterministic given `(now, seed)`, and O(1) or O(log n) per
//! pick and per report (O(1) expected for the host lookup by address), with its capacity `H`
//! (hosts per route) fixed by a const generic. The one exception is slow start: while hosts
//! ramp up, a pick may pass over several of them, up to the whole route. Weight 0 drains a host
//! in the weighted and Maglev policies; Lars, round robin and P2C ignore weights.
//! - [`lars`]: the original Lars idle/overload algorithm, the default;
//! - [`round_robin`]: plain rotation;
//! - [`weighted`]: smooth weighted round robin;
//! - [`p2c`]: power of two choices over an EWMA of reported latency;
//! - [`maglev`]: consistent hashing on a caller's key.
//!
//! [`Balancer`] holds any one of them for a route, so a route slot costs the largest policy,
//! not the sum. Policies see hosts as [`WeightedHost`]s and calls as [`Outcome`]s; a host that a
//! route update keeps keeps its state.

use core::net::SocketAddr;

use crate::time::{Duration, Instant};
use crate::wire::native::{Outcome, WeightedHost};

pub mod lars;
pub mod maglev;
pub mod p2c;
pub mod round_robin;
#[cfg(test)]
mod testutil;
pub mod weighted;

/// The answer to a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Call this host.
    Host(SocketAddr),
    /// Every host is overloaded and this is not a probe turn (Lars return code 1).
    Overloaded,
    /// The route has no hosts.
    NoHosts,
}

/// Why a route update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateError {
    /// The route has more hosts than the balancer's capacity; the update was not applied.
    OverCapacity {
        /// Hosts in the update.
        hosts: usize,
        /// The capacity.
        capacity: usize,
    },
}

impl core::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpdateError::OverCapacity { hosts, capacity } => {
                write!(f, "route has {hosts} hosts, over the capacity of {capacity}")
            }
        }
    }
}

impl core::error::Error for UpdateError {}

/// What a balancer does. Each policy module implements it; [`Balancer`] dispatches to one.
pub trait Balance {
    /// Replaces the route's hosts. Hosts that stay keep their state; new hosts start fresh (and
    /// in slow start, if configured). A duplicate address is kept once (the first). Fails,
    /// changing nothing, when the update has more than `H` entries, duplicates included.
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError>;

    /// Chooses a host for the next call. `key` is the caller's affinity key, used by
    /// consistent hashing and ignored by the others.
    fn pick(&mut self, now: Instant, key: Option<u64>, rng: &mut Rng) -> Pick;

    /// Records how a call to `addr` ended. Unknown addresses are ignored. Returns the change
    /// of the host's state the call caused, with its reason in numbers, for the decision log
    /// (only the Lars policy keeps host states).
    fn report(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    ) -> Option<StateChange>;

    /// Takes back a pick of `addr` that no call will follow (the caller could not use the
    /// host), for policies that count calls in flight.
    fn cancel_pick(&mut self, _addr: SocketAddr) {}

    /// The number of hosts.
    fn len(&self) -> usize;

    /// Whether the route has no hosts.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th host, in the order of the last update.
    fn host(&self, i: usize) -> Option<WeightedHost>;

    /// Whether the policy currently avoids `addr` as overloaded (only the Lars policy does).
    fn is_overloaded(&self, _addr: SocketAddr) -> bool {
        false
    }

    /// The host's successes and failures since the policy last changed its state (made it
    /// idle or overloaded, or restarted its window), for policies that keep such a window:
    /// what the original reported to lars-reporter. `None` for the others, and for unknown
    /// hosts.
    fn window(&self, _addr: SocketAddr) -> Option<(u32, u32)> {
        None
    }

    /// Counts calls to `addr` that a leasing client balanced itself into the host's
    /// [`Balance::window`], without letting them change the host's state.
    #[cfg(feature = "leases")]
    fn count_leased(&mut self, _addr: SocketAddr, _succ: u32, _err: u32) {}
}

/// A change of a host's state that a balancer made, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StateChange {
    /// What changed.
    pub change: Change,
    /// Why, in numbers.
    pub reason: Reason,
}

/// What a balancer did to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Change {
    /// Idle → overloaded: taken out of the rotation, only probed from now on.
    Overloaded,
    /// The first call to an overloaded host since it was overloaded (a probe) came back.
    Probed,
    /// Overloaded → idle: re-admitted to the rotation by its probes' results.
    Readmitted,
    /// Overloaded → idle: forgiven after `overload_timeout`.
    Forgiven,
    /// A host that joined or recovered has finished its slow start.
    SlowStartDone,
}

impl Change {
    /// Its name in logs and in the store: `overloaded`, `probed`, `readmitted`, `forgiven`,
    /// `slow_start_done`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Change::Overloaded => "overloaded",
            Change::Probed => "probed",
            Change::Readmitted => "readmitted",
            Change::Forgiven => "forgiven",
            Change::SlowStartDone => "slow_start_done",
        }
    }
}

/// Why a balancer changed a host's state: the numbers it compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reason {
    /// `count` failures in a row reached `limit` (`contin_err_limit`).
    ConsecutiveFailures {
        /// Failures in a row.
        count: u32,
        /// The limit.
        limit: u32,
    },
    /// `count` successes in a row reached `limit` (`contin_succ_limit`).
    ConsecutiveSuccesses {
        /// Successes in a row.
        count: u32,
        /// The limit.
        limit: u32,
    },
    /// The virtual error rate `part / whole` exceeded `limit` (`err_rate`).
    ErrorRate {
        /// Virtual failures.
        part: u32,
        /// Virtual calls.
        whole: u32,
        /// The threshold, in parts per million.
        limit_ppm: u32,
    },
    /// The virtual success rate `part / whole` exceeded `limit` (`succ_rate`).
    SuccessRate {
        /// Virtual successes.
        part: u32,
        /// Virtual calls.
        whole: u32,
        /// The threshold, in parts per million.
        limit_ppm: u32,
    },
    /// The real error rate over the idle window, `part / whole`, reached `limit`
    /// (`window_err_rate`).
    WindowErrorRate {
        /// Failures in the window.
        part: u32,
        /// Calls in the window.
        whole: u32,
        /// The threshold, in parts per million.
        limit_ppm: u32,
    },
    /// The host had been overloaded for `secs` (`overload_timeout`).
    OverloadTimeout {
        /// Seconds overloaded.
        secs: u32,
    },
    /// A probe's outcome after `secs` overloaded.
    Probe {
        /// Whether the probe succeeded.
        ok: bool,
        /// Seconds since the host was overloaded.
        secs: u32,
    },
    /// The ramp of `secs` (`slow_start`) is over.
    SlowStart {
        /// The ramp's length in seconds.
        secs: u32,
    },
}

impl core::fmt::Display for Reason {
    /// `15 consecutive failures (limit 15)`, `window error rate 0.72 > 0.70 (18/25)`, ...
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A rate as a fraction with two decimals, computed in integers (no float formatting
        // on a microcontroller).
        struct Fraction(u64);
        impl core::fmt::Display for Fraction {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
            }
        }
        let of = |part: u32, whole: u32| Fraction(u64::from(part) * 100 / u64::from(whole.max(1)));
        let limit = |ppm: u32| Fraction(u64::from(ppm) / 10_000);
        match *self {
            Reason::ConsecutiveFailures { count, limit } => {
                write!(f, "{count} consecutive failures (limit {limit})")
            }
            Reason::ConsecutiveSuccesses { count, limit } => {
                write!(f, "{count} consecutive successes (limit {limit})")
            }
            Reason::ErrorRate { part, whole, limit_ppm } => {
                write!(f, "error rate {} > {} ({part}/{whole})", of(part, whole), limit(limit_ppm))
            }
            Reason::SuccessRate { part, whole, limit_ppm } => {
                write!(f, "success rate {} > {} ({part}/{whole})", of(part, whole), limit(limit_ppm))
            }
            Reason::WindowErrorRate { part, whole, limit_ppm } => {
                write!(f, "window error rate {} >= {} ({part}/{whole})", of(part, whole), limit(limit_ppm))
            }
            Reason::OverloadTimeout { secs } => write!(f, "overloaded for {secs} s (overload_timeout)"),
            Reason::Probe { ok, secs } => {
                write!(f, "probe {} after {secs} s overloaded", if ok { "succeeded" } else { "failed" })
            }
            Reason::SlowStart { secs } => write!(f, "ramped up over {secs} s"),
        }
    }
}

/// Which policy a route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// [`lars`]: idle/overload with probing. The default.
    #[default]
    Lars,
    /// [`round_robin`].
    RoundRobin,
    /// [`weighted`]: smooth weighted round robin.
    Weighted,
    /// [`p2c`]: power of two choices over EWMA latency.
    P2c,
    /// [`maglev`]: consistent hashing on the caller's key.
    Maglev,
}

impl PolicyKind {
    /// Every policy, in the order [`PolicyKind::as_str`] names them.
    pub const ALL: [PolicyKind; 5] =
        [PolicyKind::Lars, PolicyKind::RoundRobin, PolicyKind::Weighted, PolicyKind::P2c, PolicyKind::Maglev];

    /// The policy's name in configuration: `lars`, `round_robin`, `weighted`, `p2c`, `maglev`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Lars => "lars",
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::Weighted => "weighted",
            PolicyKind::P2c => "p2c",
            PolicyKind::Maglev => "maglev",
        }
    }

    /// The policy named `name` (as [`PolicyKind::as_str`] spells it).
    pub fn parse(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// Parameters of every policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbConfig {
    /// The Lars policy's thresholds.
    pub lars: lars::LarsConfig,
    /// The P2C policy's parameters.
    pub p2c: p2c::P2cConfig,
    /// Ramp-up window for hosts that join or recover: a host in its window is chosen less often,
    /// in proportion to the time it has been up. Zero turns slow start off (the default, which
    /// keeps the Lars policy identical to the original).
    pub slow_start: Duration,
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            lars: lars::LarsConfig::default(),
            p2c: p2c::P2cConfig::default(),
            slow_start: Duration::ZERO,
        }
    }
}

/// A route's balancer: one of the policies, each with room for `H` hosts.
#[allow(clippy::large_enum_variant)] // a route slot is sized for its largest policy on purpose
pub enum Balancer<const H: usize> {
    /// Lars idle/overload.
    Lars(lars::Lars<H>),
    /// Round robin.
    RoundRobin(round_robin::RoundRobin<H>),
    /// Smooth weighted round robin.
    Weighted(weighted::Weighted<H>),
    /// Power of two choices.
    P2c(p2c::P2c<H>),
    /// Consistent hashing.
    Maglev(maglev::Maglev<H>),
}

impl<const H: usize> Balancer<H> {
    /// An empty balancer of kind `kind`.
    pub fn new(kind: PolicyKind, config: &LbConfig) -> Self {
        match kind {
            PolicyKind::Lars => Balancer::Lars(lars::Lars::new(config.lars, config.slow_start)),
            PolicyKind::RoundRobin => Balancer::RoundRobin(round_robin::RoundRobin::new(config.slow_start)),
            PolicyKind::Weighted => Balancer::Weighted(weighted::Weighted::new(config.slow_start)),
            PolicyKind::P2c => Balancer::P2c(p2c::P2c::new(config.p2c, config.slow_start)),
            PolicyKind::Maglev => Balancer::Maglev(maglev::Maglev::new()),
        }
    }

    /// The policy this balancer runs.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Balancer::Lars(_) => PolicyKind::Lars,
            Balancer::RoundRobin(_) => PolicyKind::RoundRobin,
            Balancer::Weighted(_) => PolicyKind::Weighted,
            Balancer::P2c(_) => PolicyKind::P2c,
            Balancer::Maglev(_) => PolicyKind::Maglev,
        }
    }

    fn inner(&self) -> &dyn Balance {
        match self {
            Balancer::Lars(b) => b,
            Balancer::RoundRobin(b) => b,
            Balancer::Weighted(b) => b,
            Balancer::P2c(b) => b,
            Balancer::Maglev(b) => b,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Balance {
        match self {
            Balancer::Lars(b) => b,
            Balancer::RoundRobin(b) => b,
            Balancer::Weighted(b) => b,
            Balancer::P2c(b) => b,
            Balancer::Maglev(b) => b,
        }
    }
}

impl<const H: usize> Balance for Balancer<H> {
    fn update(&mut self, now: Instant, hosts: &[WeightedHost]) -> Result<(), UpdateError> {
        self.inner_mut().update(now, hosts)
    }

    fn pick(&mut self, now: Instant, key: Option<u64>, rng: &mut Rng) -> Pick {
        self.inner_mut().pick(now, key, rng)
    }

    fn cancel_pick(&mut self, addr: SocketAddr) {
        self.inner_mut().cancel_pick(addr)
    }

    fn report(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        outcome: Outcome,
        latency_us: u32,
    ) -> Option<StateChange> {
        self.inner_mut().report(now, addr, outcome, latency_us)
    }

    fn len(&self) -> usize {
        self.inner().len()
    }

    fn host(&self, i: usize) -> Option<WeightedHost> {
        self.inner().host(i)
    }

    fn is_overloaded(&self, addr: SocketAddr) -> bool {
        self.inner().is_overloaded(addr)
    }

    fn window(&self, addr: SocketAddr) -> Option<(u32, u32)> {
        self.inner().window(addr)
    }

    #[cfg(feature = "leases")]
    fn count_leased(&mut self, addr: SocketAddr, succ: u32, err: u32) {
        self.inner_mut().count_leased(addr, succ, err);
    }
}

/// A small, fast, seeded generator (SplitMix64): the only randomness the policies use.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), without modulo bias worth measuring.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A host's rank for `salt`: a well-mixed hash of both, for choosing a stable subset of a
/// route too large to hold.
pub(crate) fn host_rank(salt: u64, addr: SocketAddr) -> u64 {
    let host = HostAddr::from(addr);
    let mut h = salt ^ u64::from(host.v6);
    for chunk in host.ip.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = splitmix(h ^ u64::from_le_bytes(word));
    }
    splitmix(h ^ u64::from(addr.port()))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Slow start: whether a host up since `since` takes this pick. It accepts with probability
/// `elapsed / window`, so a new host's share ramps up linearly over the window.
pub(crate) fn slow_start_admits(now: Instant, since: Instant, window: Duration, rng: &mut Rng) -> bool {
    let elapsed = now.saturating_since(since).as_micros();
    let window = window.as_micros();
    elapsed >= window || (rng.next_u64() % window) < elapsed
}

/// A host address as the agent keeps it: IP and port, without the IPv6 flow and scope ids
/// that no lars wire format carries. 20 bytes where `SocketAddr` takes 32, which matters at
/// `routes × hosts` copies on a gateway. It orders as `SocketAddr` does (IPv4 first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HostAddr {
    v6: bool,
    ip: [u8; 16],
    port: u16,
}

impl HostAddr {
    /// 0.0.0.0:0.
    pub(crate) const UNSPECIFIED: HostAddr = HostAddr { v6: false, ip: [0; 16], port: 0 };
}

impl From<SocketAddr> for HostAddr {
    fn from(addr: SocketAddr) -> HostAddr {
        match addr {
            SocketAddr::V4(v4) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&v4.ip().octets());
                HostAddr { v6: false, ip, port: v4.port() }
            }
            SocketAddr::V6(v6) => HostAddr { v6: true, ip: v6.ip().octets(), port: v6.port() },
        }
    }
}

impl From<HostAddr> for SocketAddr {
    fn from(addr: HostAddr) -> SocketAddr {
        if addr.v6 {
            SocketAddr::from((core::net::Ipv6Addr::from(addr.ip), addr.port))
        } else {
            let [a, b, c, d, ..] = addr.ip;
            SocketAddr::from((core::net::Ipv4Addr::new(a, b, c, d), addr.port))
        }
    }
}

/// Finds a host's position by address in O(1) expected time: an open-addressing hash table of
/// positions with `2H` slots, so it is never more than half full.
pub(crate) struct HostIndex<const H: usize> {
    slots: [[u16; 2]; H],
}

const EMPTY_SLOT: u16 = u16::MAX;

impl<const H: usize> HostIndex<H> {
    pub(crate) const fn new() -> Self {
        const { assert!(H < u16::MAX as usize, "a route holds at most 65534 hosts") };
        HostIndex { slots: [[EMPTY_SLOT; 2]; H] }
    }

    fn table(&self) -> &[u16] {
        self.slots.as_flattened()
    }

    /// The first slot to probe for `addr`.
    fn home(addr: SocketAddr) -> usize {
        let mixed = match addr {
            SocketAddr::V4(a) => (u64::from(a.ip().to_bits()) << 16) | u64::from(a.port()),
            SocketAddr::V6(a) => {
                let bits = a.ip().to_bits();
                ((bits >> 64) as u64 ^ bits as u64).rotate_left(16) ^ u64::from(a.port())
            }
        };
        // Fibonacci hashing, then map onto the table without a division.
        let hash = mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((u128::from(hash) * (2 * H) as u128) >> 64) as usize
    }

    /// Position of `addr` among the hosts this index was built for.
    pub(crate) fn find(&self, addr: SocketAddr, addr_of: impl Fn(usize) -> SocketAddr) -> Option<usize> {
        let table = self.table();
        let mut probe = Self::home(addr);
        loop {
            let position = *table.get(probe)?;
            if position == EMPTY_SLOT {
                return None;
            }
            if addr_of(usize::from(position)) == addr {
                return Some(usize::from(position));
            }
            probe = if probe + 1 == table.len() { 0 } else { probe + 1 };
        }
    }

    /// Adds host `position` unless its address is already indexed; returns the earlier position
    /// of a duplicate.
    fn insert(&mut self, position: usize, addr_of: impl Fn(usize) -> SocketAddr) -> Option<usize> {
        let addr = addr_of(position);
        let len = self.slots.len() * 2;
        let table = self.slots.as_flattened_mut();
        let mut probe = Self::home(addr);
        loop {
            match table[probe] {
                EMPTY_SLOT => {
                    table[probe] = position as u16; // `position < H < u16::MAX`
                    return None;
                }
                other if addr_of(usize::from(other)) == addr => return Some(usize::from(other)),
                _ => probe = if probe + 1 == len { 0 } else { probe + 1 },
            }
        }
    }

    /// Rebuilds the index for hosts `0..len` (at most `H`).
    pub(crate) fn rebuild(&mut self, len: usize, addr_of: impl Fn(usize) -> SocketAddr) {
        self.slots = [[EMPTY_SLOT; 2]; H];
        for position in 0..len.min(H) {
            self.insert(position, &addr_of);
        }
    }
}

/// A route update, checked against the capacity `H`: its hosts in order with duplicate
/// addresses dropped (the first occurrence wins), and an index to test membership in O(1).
pub(crate) struct NewHosts<const H: usize> {
    pub(crate) hosts: heapless::Vec<WeightedHost, H>,
    index: HostIndex<H>,
}

impl<const H: usize> NewHosts<H> {
    /// Fails when the update has more than `H` entries, duplicates included.
    pub(crate) fn new(hosts: &[WeightedHost]) -> Result<Self, UpdateError> {
        if hosts.len() > H {
            return Err(UpdateError::OverCapacity { hosts: hosts.len(), capacity: H });
        }
        let mut update = NewHosts { hosts: heapless::Vec::new(), index: HostIndex::new() };
        for host in hosts {
            let position = update.hosts.len();
            let _ = update.hosts.push(*host); // fits: checked above
            let kept = &update.hosts;
            if update.index.insert(position, |i| kept[i].addr).is_some() {
                update.hosts.pop();
            }
        }
        Ok(update)
    }

    /// Whether the update holds `addr`.
    pub(crate) fn contains(&self, addr: SocketAddr) -> bool {
        self.index.find(addr, |i| self.hosts[i].addr).is_some()
    }
}

#[cfg(test)]
mod tests {
    use core::net::SocketAddr;

    use super::HostAddr;

    /// IPv4 and IPv6 hosts that differ in each part, in `SocketAddr` order.
    const HOSTS: [&str; 8] = [
        "0.0.0.0:0",
        "10.0.0.1:80",
        "10.0.0.1:81",
        "10.0.0.2:80",
        "255.255.255.255:65535",
        "[::]:0",
        "[::1]:80",
        "[2001:db8::1]:7778",
    ];

    #[test]
    fn host_addr_round_trips_and_orders_like_socket_addr() {
        let parsed: [SocketAddr; 8] = HOSTS.map(|h| h.parse().unwrap());
        for a in parsed {
            assert_eq!(SocketAddr::from(HostAddr::from(a)), a);
            for b in parsed {
                assert_eq!(HostAddr::from(a).cmp(&HostAddr::from(b)), a.cmp(&b), "{a} vs {b}");
            }
        }
        assert!(core::mem::size_of::<HostAddr>() <= 20);
    }
}
