//! Fault knobs: latency, random errors, fixed statuses, dropped connections, down.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Clone)]
struct RouteFault {
    method: String,
    pattern: Vec<String>,
    action: RouteAction,
    /// Matching requests still to let through before failing.
    skip: u64,
    /// How many more matching requests to fail; `None`: all of them.
    remaining: Option<u64>,
}

#[derive(Debug, Default)]
struct FaultState {
    latency: Duration,
    error_rate: f64,
    rng: u64,
    routes: Vec<RouteFault>,
    drop_connections: bool,
    down: bool,
}

/// What a route fault does to a matching request.
#[derive(Debug, Clone, PartialEq)]
enum RouteAction {
    Status(u16, Option<String>),
    /// Close the connection before the handler runs: nothing is written.
    Drop,
    /// Run the handler (its write happens), then hold the answer back this long: what a client
    /// with a shorter timeout sees as a timeout of a request that did succeed.
    DelayAnswer(Duration),
}

/// What the server should do with one request before it reaches a handler.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Pass,
    Drop,
    Status(u16, Option<String>),
    /// Handle the request, then wait this long before answering.
    DelayAnswer(Duration),
}

/// A handle on the stand-in's fault knobs; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultState>>);

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A test that panicked while holding the lock must not wedge the server.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds this delay before every request is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Answers a fraction `rate` (0.0–1.0) of requests with 500, drawn from
    /// a seeded generator so a test run is reproducible.
    pub fn set_error_rate(&self, rate: f64, seed: u64) {
        let mut s = self.lock();
        s.error_rate = rate.clamp(0.0, 1.0);
        // splitmix64 needs a non-trivial state; any seed works.
        s.rng = seed ^ 0x9E37_79B9_7F4A_7C15;
    }

    /// Answers every request matching `method` and `path_pattern` with `status`.
    /// The pattern is a path whose segments may be `*` (any one segment),
    /// e.g. `/api/apps/*`. Later calls take precedence.
    pub fn fail_route(&self, method: &str, path_pattern: &str, status: u16) {
        self.fail_route_with_message(method, path_pattern, status, None);
    }

    /// Like [`Faults::fail_route`], with the NestJS `message` to answer.
    pub fn fail_route_with_message(
        &self,
        method: &str,
        path_pattern: &str,
        status: u16,
        message: Option<&str>,
    ) {
        self.lock().routes.insert(
            0,
            RouteFault {
                method: method.to_ascii_uppercase(),
                pattern: segments(path_pattern),
                action: RouteAction::Status(status, message.map(str::to_string)),
                skip: 0,
                remaining: None,
            },
        );
    }

    /// Answers only the `n`-th (1-based) request matching `method` and `path_pattern` with
    /// `status`, counting from now; the others pass. For failing one step of a sequence
    /// that calls the same route twice (a swap renames two apps with `PUT /api/apps/:id`).
    pub fn fail_nth(&self, method: &str, path_pattern: &str, n: u64, status: u16) {
        self.nth(method, path_pattern, n, RouteAction::Status(status, None));
    }

    /// Closes the connection of only the `n`-th (1-based) request matching `method` and
    /// `path_pattern`, before it is handled (nothing written); counting from now.
    pub fn drop_nth(&self, method: &str, path_pattern: &str, n: u64) {
        self.nth(method, path_pattern, n, RouteAction::Drop);
    }

    /// Handles the `n`-th (1-based) request matching `method` and `path_pattern`, then holds its
    /// answer back for `delay`: a client with a shorter timeout sees a timeout of a request whose
    /// write did happen.
    pub fn delay_answer_nth(&self, method: &str, path_pattern: &str, n: u64, delay: Duration) {
        self.nth(method, path_pattern, n, RouteAction::DelayAnswer(delay));
    }

    fn nth(&self, method: &str, path_pattern: &str, n: u64, action: RouteAction) {
        self.lock().routes.insert(
            0,
            RouteFault {
                method: method.to_ascii_uppercase(),
                pattern: segments(path_pattern),
                action,
                skip: n.saturating_sub(1),
                remaining: Some(1),
            },
        );
    }

    /// Removes every route fault.
    pub fn clear_routes(&self) {
        self.lock().routes.clear();
    }

    /// Closes every connection on its next request without answering.
    pub fn set_drop_connections(&self, on: bool) {
        self.lock().drop_connections = on;
    }

    /// Closes every connection, new and existing, as a server that went away.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Turns every knob off.
    pub fn reset(&self) {
        *self.lock() = FaultState::default();
    }

    pub(crate) fn is_down(&self) -> bool {
        self.lock().down
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn verdict(&self, method: &str, path: &str) -> Verdict {
        let mut s = self.lock();
        if s.down || s.drop_connections {
            return Verdict::Drop;
        }
        let path = segments(path);
        for f in s.routes.iter_mut().filter(|f| {
            f.method == method
                && f.pattern.len() == path.len()
                && f.pattern.iter().zip(&path).all(|(p, s)| p == "*" || p == s)
        }) {
            if f.remaining == Some(0) {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            if let Some(n) = &mut f.remaining {
                *n -= 1;
            }
            return match &f.action {
                RouteAction::Status(code, message) => Verdict::Status(*code, message.clone()),
                RouteAction::Drop => Verdict::Drop,
                RouteAction::DelayAnswer(d) => Verdict::DelayAnswer(*d),
            };
        }
        if s.error_rate > 0.0 {
            let draw = splitmix64(&mut s.rng) as f64 / u64::MAX as f64;
            if draw < s.error_rate {
                return Verdict::Status(500, None);
            }
        }
        Verdict::Pass
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_one_segment_per_star() {
        let f = Faults::default();
        f.fail_route("get", "/api/apps/*", 503);
        assert_eq!(
            f.verdict("GET", "/api/apps/123"),
            Verdict::Status(503, None)
        );
        assert_eq!(f.verdict("GET", "/api/apps"), Verdict::Pass);
        assert_eq!(f.verdict("PUT", "/api/apps/123"), Verdict::Pass);
        assert_eq!(f.verdict("GET", "/api/apps/1/release"), Verdict::Pass);
        f.clear_routes();
        assert_eq!(f.verdict("GET", "/api/apps/123"), Verdict::Pass);
    }

    #[test]
    fn fail_nth_fails_only_that_request() {
        let f = Faults::default();
        f.fail_nth("PUT", "/api/apps/*", 2, 500);
        assert_eq!(f.verdict("PUT", "/api/apps/1"), Verdict::Pass);
        assert_eq!(f.verdict("PUT", "/api/apps/2"), Verdict::Status(500, None));
        assert_eq!(f.verdict("PUT", "/api/apps/3"), Verdict::Pass);
    }

    #[test]
    fn drop_nth_and_delay_answer_nth_hit_only_that_request() {
        let f = Faults::default();
        f.drop_nth("DELETE", "/api/apps/*", 2);
        f.delay_answer_nth("GET", "/api/apps/*", 1, Duration::from_secs(3));
        assert_eq!(f.verdict("DELETE", "/api/apps/1"), Verdict::Pass);
        assert_eq!(f.verdict("DELETE", "/api/apps/1"), Verdict::Drop);
        assert_eq!(f.verdict("DELETE", "/api/apps/1"), Verdict::Pass);
        assert_eq!(
            f.verdict("GET", "/api/apps/1"),
            Verdict::DelayAnswer(Duration::from_secs(3))
        );
        assert_eq!(f.verdict("GET", "/api/apps/1"), Verdict::Pass);
    }

    #[test]
    fn error_rate_is_seeded_and_roughly_right() {
        let draw = |seed| {
            let f = Faults::default();
            f.set_error_rate(0.3, seed);
            (0..1000)
                .map(|_| f.verdict("GET", "/x") != Verdict::Pass)
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        let failures = a.iter().filter(|x| **x).count();
        assert!((200..400).contains(&failures), "{failures}");
    }

    #[test]
    fn down_and_drop_win() {
        let f = Faults::default();
        f.set_drop_connections(true);
        assert_eq!(f.verdict("GET", "/x"), Verdict::Drop);
        f.reset();
        f.set_down(true);
        assert!(f.is_down());
        assert_eq!(f.verdict("GET", "/x"), Verdict::Drop);
    }
}
