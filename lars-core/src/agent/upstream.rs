//! The agent's upstream links: lars-dns and lars-reporter coming and going, their codecs, and
//! the route answers and pushes lars-dns sends.

use core::net::{SocketAddr, SocketAddrV4};

use super::route::subset;
use super::table::Pull;
use super::*;
use crate::lb::{Balance, UpdateError};
use crate::time::Instant;
use crate::wire::native::{self, WeightedHost};
use crate::wire::{Decode, Frame, MsgId, RetCode, lars};

impl<const R: usize, const H: usize, const D: usize> Agent<R, H, D> {
    /// The dns link came up (`true`) or went down. Coming up re-pulls every route (once the
    /// link's codec is known), which also renews the subscriptions a new lars-dns connection
    /// does not have; going down turns pulls in flight back into pulls to send.
    pub fn handle_dns_link(&mut self, now: Instant, up: bool) {
        if up {
            // Without a secret (and in a build without `auth`) exactly the codec's way.
            if !self.start_handshake(now, Link::Dns) {
                let known = self.dns.up(now, self.config.codec_probe_timeout);
                self.codec_chosen(Link::Dns, known);
            }
        } else {
            self.dns.down();
        }
        for slot in 0..self.routes.len() {
            if up || matches!(self.routes.pull(slot), Pull::InFlight { .. }) {
                self.mark_due(slot);
            }
        }
    }

    /// The reporter link came up (`true`) or went down.
    pub fn handle_reporter_link(&mut self, now: Instant, up: bool) {
        if up {
            if !self.start_handshake(now, Link::Reporter) {
                let known = self.reporter.up(now, self.config.codec_probe_timeout);
                self.codec_chosen(Link::Reporter, known);
            }
        } else {
            self.reporter.down();
        }
    }

    /// A link came up: with a secret it starts the handshake (and returns true); without one
    /// the link finds out or takes its codec as before.
    #[cfg(feature = "auth")]
    fn start_handshake(&mut self, now: Instant, link: Link) -> bool {
        if self.config.secret.is_none() {
            return false;
        }
        let (state, expected) = match link {
            Link::Dns => (&mut self.dns, native::Role::Dns),
            Link::Reporter => (&mut self.reporter, native::Role::Reporter),
        };
        let timeout = self.config.codec_probe_timeout;
        state.up_authenticating(now, timeout, native::Role::Agent, self.config.caller, expected);
        true
    }

    #[cfg(not(feature = "auth"))]
    fn start_handshake(&mut self, _now: Instant, _link: Link) -> bool {
        false
    }

    /// With a secret, what a frame from `link` means to the handshake: `Some(Ok)` for a
    /// challenge that proved the peer, `Some(Err)` for a frame refused (the link is to be
    /// closed), `None` for a frame of an authenticated link, to be handled as usual.
    #[cfg(feature = "auth")]
    fn authenticate(&mut self, link: Link, frame: &Frame<'_>) -> Option<Result<(), crate::auth::AuthError>> {
        use crate::auth::AuthError;
        let secret = self.config.secret.as_ref()?;
        let state = match link {
            Link::Dns => &mut self.dns,
            Link::Reporter => &mut self.reporter,
        };
        let result = match frame.msgid {
            MsgId::AuthChallenge => native::AuthChallenge::parse(frame.body)
                .map_err(AuthError::Malformed)
                .and_then(|challenge| state.heard_challenge(secret, &challenge)),
            _ if state.codec().is_some() => return None,
            other => Err(AuthError::Unauthenticated(other)),
        };
        match result {
            Ok(()) => {
                self.push_event(AgentEvent::Authenticated { link });
                self.codec_chosen(link, Some(Codec::Native));
            }
            Err(_) => {
                state.fail();
                self.stats.auth_failures += 1;
                self.push_event(AgentEvent::AuthFailed { link, timed_out: false });
            }
        }
        Some(result)
    }

    pub(super) fn codec_chosen(&mut self, link: Link, codec: Option<Codec>) {
        if let Some(codec) = codec {
            self.push_event(AgentEvent::CodecChosen { link, codec });
        }
    }

    /// Handles a frame from lars-reporter, which sends nothing but its answer to the agent's
    /// `Hello` (and keep-alives). An error means the link is unusable; the driver should close
    /// it (and reconnect).
    pub fn handle_reporter_frame(&mut self, _now: Instant, frame: Frame<'_>) -> Result<(), ReporterError> {
        #[cfg(feature = "auth")]
        if let Some(result) = self.authenticate(Link::Reporter, &frame) {
            return result.map_err(ReporterError::Auth);
        }
        match frame.msgid {
            MsgId::Hello => {
                let known = self.reporter.heard_hello();
                self.codec_chosen(Link::Reporter, known);
                Ok(())
            }
            MsgId::Heartbeat => Ok(()),
            other => Err(ReporterError::Unexpected(other)),
        }
    }

    /// Handles a frame from lars-dns: a route answer or push. An error means the link is
    /// unusable; the driver should close it (and reconnect).
    pub fn handle_dns_frame(&mut self, now: Instant, frame: Frame<'_>) -> Result<(), DnsError> {
        let result = self.apply_dns_frame(now, frame);
        if result.is_err() {
            self.stats.dns_errors += 1;
        }
        result
    }

    fn apply_dns_frame(&mut self, now: Instant, frame: Frame<'_>) -> Result<(), DnsError> {
        // Nothing from lars-dns is trusted before it proved the secret.
        #[cfg(feature = "auth")]
        if let Some(result) = self.authenticate(Link::Dns, &frame) {
            return result.map_err(DnsError::Auth);
        }
        let mut hosts = [WeightedHost { addr: SocketAddr::V4(SocketAddrV4::new(0.into(), 0)), weight: 1 }; H];
        let salt = u64::from(self.config.caller);
        let (modid, cmdid, version, offered, kept) = match frame.msgid {
            MsgId::GetRouteResponse => {
                let r = lars::GetRouteResponse::parse(frame.body).map_err(DnsError::Malformed)?;
                let all = r.hosts.iter().map(|addr| WeightedHost { addr: SocketAddr::V4(addr), weight: 1 });
                let kept = subset(&mut hosts, all, r.hosts.len(), salt);
                (r.modid, r.cmdid, 0, r.hosts.len(), kept)
            }
            MsgId::NativeRouteResponse => {
                let r = native::RouteResponse::parse(frame.body).map_err(DnsError::Malformed)?;
                match r.code {
                    RetCode::Succ => {}
                    // The dns has not loaded its store: it does not know, so nothing changes.
                    RetCode::SystemError => {
                        self.dns_unready(now, r.modid, r.cmdid);
                        return Ok(());
                    }
                    _ => {
                        self.apply_route(now, r.modid, r.cmdid, r.version, &[], 0);
                        return Ok(());
                    }
                }
                let kept = subset(&mut hosts, r.hosts.iter(), r.hosts.len(), salt);
                (r.modid, r.cmdid, r.version, r.hosts.len(), kept)
            }
            // A native lars-dns answers the agent's greeting; that decides the link's codec.
            MsgId::Hello => {
                let known = self.dns.heard_hello();
                self.codec_chosen(Link::Dns, known);
                return Ok(());
            }
            MsgId::Heartbeat => return Ok(()),
            other => return Err(DnsError::Unexpected(other)),
        };
        self.apply_route(now, modid, cmdid, version, &hosts[..kept], offered);
        Ok(())
    }

    /// lars-dns answered that it has not loaded its store (it restarted on a store it cannot
    /// read, say). The route keeps its hosts, stale or not, and is asked for again after the
    /// pull's backoff, as if the answer had not come.
    fn dns_unready(&mut self, now: Instant, modid: i32, cmdid: i32) {
        self.stats.dns_unready_answers += 1;
        self.dns_ready = false;
        let Some(slot) = self.find(modid, cmdid) else { return };
        let deadline =
            self.routes[slot].pull_deadline(now, self.config.pull_timeout, self.config.pull_backoff_max);
        self.routes.set_pull(slot, Pull::InFlight { deadline });
        self.push_event(AgentEvent::DnsUnready { modid, cmdid });
    }

    /// Applies `hosts`, the route as lars-dns sent it (`offered` hosts, of which `hosts` is the
    /// subset that fits).
    fn apply_route(
        &mut self,
        now: Instant,
        modid: i32,
        cmdid: i32,
        version: u64,
        hosts: &[WeightedHost],
        offered: usize,
    ) {
        // Answers for routes nobody asked this agent for are ignored, as in the original.
        let Some(slot) = self.find(modid, cmdid) else { return };
        self.stats.routes_received += 1;
        // The latest answer on the link is the truth, whatever its version: one TCP link
        // delivers in order, and versions from another link (a restarted dns, another replica,
        // another store) are not comparable. Only the link is, and it changes when they do.
        self.dns_ready = true;
        self.routes.set_pull(slot, Pull::Idle);
        let route = &mut self.routes[slot];
        route.attempts = 0;
        if offered == 0 {
            self.remember_missing(now, slot);
            return;
        }
        match route.balancer.update(now, hosts) {
            Ok(()) => {
                route.state = RouteState::Fresh;
                route.version = version;
                route.updated_at = now;
                let hosts = route.balancer.len();
                if offered > hosts {
                    self.stats.route_over_capacity += 1;
                    self.push_event(AgentEvent::RouteTooLarge { modid, cmdid, hosts: offered });
                }
                self.push_event(AgentEvent::RouteUpdated { modid, cmdid, hosts });
            }
            Err(UpdateError::OverCapacity { hosts, .. }) => {
                // Keep serving what we had; try again at the next refresh.
                route.updated_at = now;
                self.stats.route_over_capacity += 1;
                self.push_event(AgentEvent::RouteTooLarge { modid, cmdid, hosts });
            }
        }
    }
}
