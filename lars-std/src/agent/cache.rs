//! The agent's copy of its routes on disk, so that a restart while lars-dns is unreachable
//! still serves them.

use std::path::PathBuf;

use lars_core::agent::Agent;
use lars_core::time::Instant;

use crate::time::Clock;

/// The agent's copy of its routes on disk, in the route-file format under a header line that
/// says when it was written. It is rewritten (atomically: a new file renamed over the old) at
/// most once a second after routes change, and holds at most the agent's table.
pub(super) struct RouteCache {
    path: PathBuf,
    pub(super) dirty: bool,
    saved_at: Option<Instant>,
    /// A write failed; said once, until one succeeds.
    failing: bool,
}

const CACHE_HEADER: &str = "# lars-agent routes, saved at unix time ";

impl RouteCache {
    pub(super) fn new(path: PathBuf) -> RouteCache {
        RouteCache { path, dirty: false, saved_at: None, failing: false }
    }

    /// Serves the routes of a copy no older than `max_age`.
    pub(super) fn restore<const R: usize, const H: usize, const D: usize>(
        &self,
        agent: &mut Agent<R, H, D>,
        now: Instant,
        max_age: std::time::Duration,
    ) {
        let Ok(text) = std::fs::read_to_string(&self.path) else { return };
        let saved =
            text.lines().next().and_then(|line| line.strip_prefix(CACHE_HEADER)?.trim().parse::<u64>().ok());
        let Some(saved) = saved else {
            log::warn!("{}: not a route cache; ignored", self.path.display());
            return;
        };
        let age = Clock::unix_secs().saturating_sub(saved);
        if age > max_age.as_secs() {
            log::warn!(
                "{}: saved {age} s ago, older than {} s; ignored",
                self.path.display(),
                max_age.as_secs()
            );
            return;
        }
        let table = match crate::store::file::RouteFile::parse(&text, &self.path, 0) {
            Ok(table) => table,
            Err(e) => return log::warn!("route cache ignored: {e}"),
        };
        let restored = table
            .routes
            .iter()
            .filter(|((modid, cmdid), hosts)| agent.restore_route(now, *modid, *cmdid, hosts))
            .count();
        log::info!("serving {restored} routes saved {age} s ago until lars-dns answers");
    }

    pub(super) fn save_if_due<const R: usize, const H: usize, const D: usize>(
        &mut self,
        agent: &Agent<R, H, D>,
        now: Instant,
    ) {
        if !self.dirty || self.saved_at.is_some_and(|at| now.saturating_since(at).as_millis() < 1000) {
            return;
        }
        let mut text = format!("{CACHE_HEADER}{}\n", Clock::unix_secs());
        for (modid, cmdid, hosts) in agent.routes() {
            for host in hosts {
                text.push_str(&format!("{modid} {cmdid} {} {}\n", host.addr, host.weight));
            }
        }
        let temp = self.path.with_extension("tmp");
        // Synced before the rename, so that after a power loss the file is the old copy or the
        // new one, never an empty one.
        let written = std::fs::File::create(&temp)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &self.path));
        self.saved_at = Some(now);
        match written {
            Ok(()) => {
                self.failing = false;
                self.dirty = false;
            }
            Err(e) if !self.failing => {
                log::error!("could not save the route cache {}: {e}", self.path.display());
                self.failing = true;
            }
            // Still dirty: tried again a second later.
            Err(_) => {}
        }
    }
}
