//! How the agent behaves: its configuration, with the shipped Lars defaults.

use crate::lb::{LbConfig, PolicyKind};
use crate::time::Duration;
use crate::wire::CodecChoice;

/// A route that uses another policy than [`AgentConfig::default_policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The policy for that route.
    pub policy: PolicyKind,
}

/// How the agent behaves. `Default` gives the shipped Lars configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Policy parameters.
    pub lb: LbConfig,
    /// The policy of routes not listed in `route_policies`.
    pub default_policy: PolicyKind,
    /// Per-route policy choices.
    pub route_policies: heapless::Vec<RoutePolicy, 32>,
    /// Age after which a route's hosts are refreshed from lars-dns (served meanwhile).
    pub update_timeout: Duration,
    /// How long a pull waits for its answer before it is sent again; doubles on each retry.
    pub pull_timeout: Duration,
    /// The longest wait between two pulls of one route.
    pub pull_backoff_max: Duration,
    /// How long a "no such route" answer is remembered before the route is asked for again.
    pub missing_ttl: Duration,
    /// A full table evicts a route nobody has asked for in this long (the one asked for
    /// longest ago) to make room for a new one; routes asked for since are never evicted.
    pub route_idle_evict: Duration,
    /// How often call statistics go to lars-reporter.
    pub report_interval: Duration,
    /// Statistics go out early once this many results are waiting (0: only on the interval).
    pub report_after: u32,
    /// The codec spoken to lars-dns.
    pub dns_codec: CodecChoice,
    /// The codec spoken to lars-reporter.
    pub reporter_codec: CodecChoice,
    /// How long a link with [`CodecChoice::Auto`] waits for the peer to answer its `Hello`
    /// before it takes the peer for an original Lars daemon.
    pub codec_probe_timeout: Duration,
    /// This agent's id in statistics (the original used its IPv4 address as an integer).
    pub caller: u32,
    /// Seed of the policies' randomness.
    pub seed: u64,
    /// The secret both links prove and demand (see [`crate::auth`]); `None` speaks without
    /// authenticating, as before. With a secret each link is native and authenticated, or
    /// closed: there is no Lars fallback, and `dns_codec`/`reporter_codec` are not used.
    #[cfg(feature = "auth")]
    pub secret: Option<crate::auth::Secret>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            lb: LbConfig::default(),
            default_policy: PolicyKind::Lars,
            route_policies: heapless::Vec::new(),
            update_timeout: Duration::from_secs(15),
            pull_timeout: Duration::from_secs(1),
            pull_backoff_max: Duration::from_secs(30),
            missing_ttl: Duration::from_secs(5),
            route_idle_evict: Duration::from_secs(300),
            report_interval: Duration::from_secs(1),
            report_after: 1000,
            dns_codec: CodecChoice::Auto,
            reporter_codec: CodecChoice::Auto,
            codec_probe_timeout: Duration::from_secs(1),
            caller: 0,
            seed: 0x6c61_7273,
            #[cfg(feature = "auth")]
            secret: None,
        }
    }
}
