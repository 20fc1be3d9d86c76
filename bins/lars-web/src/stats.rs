//! The console's counters, and its Prometheus page (`--metrics`, `[metrics] listen`), written by
//! lars-std's `Scrape` over the one encoder in `lars_core::metrics`, as every daemon's is.
//!
//! The pages count what they decide (a sign-in's result, a form refused for its token, a
//! session cookie that no longer holds, a change written); [`Console`](crate::Console) counts
//! every answer by its status class, and a 503, which the pages answer only when the store could
//! not be reached, as a store error. Counters only grow; nothing here is ever reset.

use std::sync::atomic::{AtomicU64, Ordering};

use lars_std::metrics::{Scrape, WEB};

use crate::auth::LoginError;

/// What the console counts. Shared by the request threads and the metrics responder.
#[derive(Debug, Default)]
pub struct WebStats {
    /// Answers by status class: 2xx, 3xx, 4xx, 5xx.
    requests: [AtomicU64; 4],
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    logins_limited: AtomicU64,
    csrf_refused: AtomicU64,
    sessions_refused: AtomicU64,
    changes_written: AtomicU64,
    store_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl WebStats {
    /// Counts an answer with `status`; a 503 is also a store error (the pages answer it only
    /// when the store could not be reached).
    pub fn answered(&self, status: u16) {
        if let Some(class) = (status / 100).checked_sub(2).filter(|class| *class < 4) {
            bump(&self.requests[usize::from(class)]);
        }
        if status == 503 {
            bump(&self.store_errors);
        }
    }

    /// Counts a sign-in by its result (a broken users file counts as failed).
    pub fn login<T>(&self, result: &Result<T, LoginError>) {
        bump(match result {
            Ok(_) => &self.logins_ok,
            Err(LoginError::Locked(_)) => &self.logins_limited,
            Err(LoginError::Wrong | LoginError::Broken(_)) => &self.logins_failed,
        });
    }

    /// Counts a post refused for its CSRF or sign-in form token.
    pub fn csrf_refused(&self) {
        bump(&self.csrf_refused);
    }

    /// Counts a request whose session cookie did not verify (expired, forged, or of a user no
    /// longer in the users file).
    pub fn session_refused(&self) {
        bump(&self.sessions_refused);
    }

    /// Counts a change the store accepted.
    pub fn change_written(&self) {
        bump(&self.changes_written);
    }

    /// The counters, named as [`WEB`] describes them (and as SIGUSR1 logs them).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            ("requests_2xx", get(&self.requests[0])),
            ("requests_3xx", get(&self.requests[1])),
            ("requests_4xx", get(&self.requests[2])),
            ("requests_5xx", get(&self.requests[3])),
            ("logins_ok", get(&self.logins_ok)),
            ("logins_failed", get(&self.logins_failed)),
            ("logins_limited", get(&self.logins_limited)),
            ("csrf_refused", get(&self.csrf_refused)),
            ("sessions_refused", get(&self.sessions_refused)),
            ("changes_written", get(&self.changes_written)),
            ("store_errors", get(&self.store_errors)),
        ]
    }

    /// The Prometheus page: every family `lars_web_...`.
    pub fn page(&self) -> String {
        let mut scrape = Scrape::new("lars_web");
        scrape.counters(&[WEB], &self.counters());
        scrape.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_the_golden_text() {
        let stats = WebStats::default();
        for status in [200, 200, 303, 401, 403, 429, 503, 500, 101, 600] {
            stats.answered(status);
        }
        stats.login(&Ok::<(), LoginError>(()));
        stats.login(&Err::<(), _>(LoginError::Wrong));
        stats.login(&Err::<(), _>(LoginError::Broken("torn".into())));
        stats.login(&Err::<(), _>(LoginError::Locked(60)));
        stats.csrf_refused();
        stats.session_refused();
        stats.session_refused();
        stats.change_written();
        assert_eq!(
            stats.page(),
            "# HELP lars_web_requests_total Requests answered, by status class.\n\
             # TYPE lars_web_requests_total counter\n\
             lars_web_requests_total{class=\"2xx\"} 2\n\
             lars_web_requests_total{class=\"3xx\"} 1\n\
             lars_web_requests_total{class=\"4xx\"} 3\n\
             lars_web_requests_total{class=\"5xx\"} 2\n\
             # HELP lars_web_logins_total Sign-ins, by result.\n\
             # TYPE lars_web_logins_total counter\n\
             lars_web_logins_total{result=\"ok\"} 1\n\
             lars_web_logins_total{result=\"failed\"} 2\n\
             lars_web_logins_total{result=\"limited\"} 1\n\
             # HELP lars_web_csrf_refusals_total Posts refused for a missing or wrong CSRF or sign-in form token.\n\
             # TYPE lars_web_csrf_refusals_total counter\n\
             lars_web_csrf_refusals_total 1\n\
             # HELP lars_web_sessions_refused_total Requests whose session cookie was expired, forged or of a user no longer known.\n\
             # TYPE lars_web_sessions_refused_total counter\n\
             lars_web_sessions_refused_total 2\n\
             # HELP lars_web_changes_written_total Changes written to the store (host edits, deletions, descriptions).\n\
             # TYPE lars_web_changes_written_total counter\n\
             lars_web_changes_written_total 1\n\
             # HELP lars_web_errors_total Things refused or failed, by kind.\n\
             # TYPE lars_web_errors_total counter\n\
             lars_web_errors_total{kind=\"store\"} 1\n"
        );
    }
}
