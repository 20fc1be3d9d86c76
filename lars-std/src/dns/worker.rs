//! lars-dns's workers: each answers route requests on its connections from the snapshot,
//! keeps their subscriptions, and pushes the loader's changes to the subscribers.
//!
//! A request is answered in the codec it came in (Lars msgid 1 with 2, native 0x120 with
//! 0x121); the worker also answers `Hello`, `Heartbeat` and `StatsRequest`, and runs every
//! frame through the shared-secret gate first. Before the store was first loaded a native
//! agent is told the dns is not ready and a Lars one gets no answer.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lars_core::wire::native::{self, Role};
use lars_core::wire::{Codec, Decode, Frame, List, MsgId, RetCode, lars};

use super::loader::{Snapshot, current};
use super::subscriptions::{Subscribed, SubscriptionCaps, Subscriptions};
use super::{DnsStats, Push};
use crate::daemon::{ServerStatsCell, answer_stats};
use crate::reactor::{CloseReason, ConnId, Conns, Control, Sender, Service};
use crate::store::{RouteKey, RouteTable};

pub(super) struct DnsWorker {
    gate: crate::auth::Gate,
    snapshot: Snapshot,
    stats: Arc<DnsStats>,
    server_stats: ServerStatsCell,
    caps: SubscriptionCaps,
    /// Who gets pushes for what, and in which codec.
    subscriptions: Subscriptions,
}

/// Set once the total cap has been reached, so that the log says it once.
static TOTAL_CAP_LOGGED: AtomicBool = AtomicBool::new(false);

impl DnsWorker {
    /// A worker answering from `snapshot`, its handshakes through `gate`.
    pub(super) fn new(
        gate: crate::auth::Gate,
        snapshot: Snapshot,
        stats: Arc<DnsStats>,
        server_stats: ServerStatsCell,
        caps: SubscriptionCaps,
    ) -> DnsWorker {
        DnsWorker { gate, snapshot, stats, server_stats, caps, subscriptions: Subscriptions::default() }
    }

    /// Subscribes `conn` to `key` within the caps: a route that does not exist (the store not
    /// loaded yet counts as existing, since nothing can be told apart) among the connection's
    /// bounded unknown ones.
    fn subscribe(&mut self, conn: ConnId, key: RouteKey, codec: Codec, table: &RouteTable) {
        let held = &self.stats.subscriptions;
        let exists = !table.loaded || !table.hosts(key).is_empty();
        if self.subscriptions.subscribe(conn, key, codec, exists, self.caps, held) == Subscribed::Refused {
            self.stats.subscriptions_refused.fetch_add(1, Ordering::Relaxed);
            if held.load(Ordering::Relaxed) >= self.caps.total as u64
                && !TOTAL_CAP_LOGGED.swap(true, Ordering::Relaxed)
            {
                log::warn!(
                    "{} subscriptions held, the total cap ([dns] subscriptions_total); \
                     further routes are answered without pushes (counted in subscriptions_refused)",
                    self.caps.total
                );
            }
        }
    }
}

/// Writes the Lars or native answer for `key` from `table` through `send`.
fn send_route(
    table: &RouteTable,
    key: RouteKey,
    codec: Codec,
    seq: u32,
    stats: &DnsStats,
    send: impl FnOnce(MsgId, &dyn lars_core::wire::Encode) -> bool,
) -> bool {
    let hosts = table.hosts(key);
    let (modid, cmdid) = key;
    let fits = match codec {
        Codec::Lars => {
            // The Lars message carries IPv4 hosts only.
            let v4: Vec<SocketAddrV4> = hosts
                .iter()
                .filter_map(|h| if let SocketAddr::V4(a) = h.addr { Some(a) } else { None })
                .collect();
            let body = lars::GetRouteResponse { modid, cmdid, hosts: List::from_slice(&v4) };
            fits_frame(&body) && send(MsgId::GetRouteResponse, &body)
        }
        Codec::Native => {
            let code = if hosts.is_empty() { RetCode::NoExist } else { RetCode::Succ };
            let body = native::RouteResponse {
                seq,
                modid,
                cmdid,
                code,
                version: table.version,
                hosts: List::from_slice(hosts),
            };
            fits_frame(&body) && send(MsgId::NativeRouteResponse, &body)
        }
    };
    if !fits {
        stats.oversize_routes.fetch_add(1, Ordering::Relaxed);
    }
    fits
}

fn fits_frame(body: &dyn lars_core::wire::Encode) -> bool {
    body.buffer_len() <= lars_core::wire::frame::MAX_BODY as usize
}

/// Lets a `&dyn Encode` be passed where `&impl Encode` is wanted.
struct Dyn<'a>(&'a dyn lars_core::wire::Encode);

impl lars_core::wire::Encode for Dyn<'_> {
    fn buffer_len(&self) -> usize {
        self.0.buffer_len()
    }
    fn emit(&self, out: &mut [u8]) -> Result<usize, lars_core::wire::Error> {
        self.0.emit(out)
    }
}

impl Service for DnsWorker {
    type Task = Push;

    fn connected(&mut self, conn: ConnId, peer: SocketAddr, _conns: &mut Conns<'_>) {
        self.gate.connected(conn, peer);
    }

    fn frame(&mut self, conn: ConnId, frame: Frame<'_>, reply: &mut Sender<'_>) -> Control {
        if let crate::auth::Screened::Done(control) = self.gate.screen(conn, &frame, reply) {
            return control;
        }
        let (key, codec, seq) = match frame.msgid {
            MsgId::GetRouteRequest => match lars::GetRouteRequest::parse(frame.body) {
                Ok(r) => ((r.modid, r.cmdid), Codec::Lars, 0),
                Err(_) => return self.bad_request(),
            },
            MsgId::NativeGetRouteRequest => match native::GetRouteRequest::parse(frame.body) {
                Ok(r) => ((r.modid, r.cmdid), Codec::Native, r.seq),
                Err(_) => return self.bad_request(),
            },
            MsgId::StatsRequest => {
                let Ok(request) = native::StatsRequest::parse(frame.body) else { return self.bad_request() };
                return answer_stats(request, Role::Dns, self.stats.counters(), &self.server_stats, reply);
            }
            MsgId::Hello | MsgId::Heartbeat => {
                return match crate::daemon::answer_control(&frame, Role::Dns, reply) {
                    Some(Ok(control)) => control,
                    _ => self.bad_request(),
                };
            }
            _ => return self.bad_request(),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let table = current(&self.snapshot);
        self.subscribe(conn, key, codec, &table);
        if !table.loaded {
            // Nothing read from the store yet: saying "no such route" would wipe the agent's
            // copy. A native agent is told the dns is not ready; an original one, which has no
            // word for it, gets no answer. Both are subscribed, so the first load pushes to them.
            self.stats.unready_answers.fetch_add(1, Ordering::Relaxed);
            if codec == Codec::Lars {
                return Control::Continue;
            }
            let body = native::RouteResponse {
                seq,
                modid: key.0,
                cmdid: key.1,
                code: RetCode::SystemError,
                version: 0,
                hosts: List::from_slice(&[]),
            };
            return Control::after(reply.send(MsgId::NativeRouteResponse, &body));
        }
        let mut failed = false;
        send_route(&table, key, codec, seq, &self.stats, |msgid, body| {
            failed = reply.send(msgid, &Dyn(body)).is_err();
            !failed
        });
        if failed { Control::Close } else { Control::Continue }
    }

    fn closed(&mut self, conn: ConnId, _reason: CloseReason) {
        self.gate.closed(conn);
        self.subscriptions.remove_conn(conn, &self.stats.subscriptions);
    }

    fn task(&mut self, push: Push, conns: &mut Conns<'_>) {
        let mut pushed = false;
        for &key in push.changed.iter() {
            for (conn, codec) in self.subscriptions.subscribers(key) {
                let stats = &self.stats;
                send_route(&push.table, key, codec, 0, stats, |msgid, body| {
                    let sent = conns.send(conn, msgid, &Dyn(body)).is_ok();
                    let counter = if sent { &stats.pushes } else { &stats.push_failures };
                    counter.fetch_add(1, Ordering::Relaxed);
                    pushed |= sent;
                    sent
                });
            }
            // A route that is gone: its subscriptions are among the bounded unknown ones now.
            if push.table.loaded && push.table.hosts(key).is_empty() {
                self.subscriptions.route_gone(key, self.caps, &self.stats.subscriptions);
            }
        }
        if pushed {
            let latency = push.noticed.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
            self.stats.push_rounds.fetch_add(1, Ordering::Relaxed);
            self.stats.push_latency_us.fetch_add(latency, Ordering::Relaxed);
        }
    }
}

impl DnsWorker {
    fn bad_request(&self) -> Control {
        self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        Control::Close
    }
}
