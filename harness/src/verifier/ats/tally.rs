//! What the ats verifiers of this process have cost, counted across all of them (they run on
//! several threads at once): how many times `traffic_server` was started and how long those
//! starts took, how many requests were answered and how long they took once ATS ran. `cargo
//! xtask bench ats` reads it; with `MRALAB_ATS_TIMINGS` set, each start and request is also
//! written on stderr as it happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static STARTS: AtomicU64 = AtomicU64::new(0);
static START_NANOS: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static REQUEST_NANOS: AtomicU64 = AtomicU64::new(0);
static CONTAINERS: AtomicU64 = AtomicU64::new(0);
static CONTAINER_NANOS: AtomicU64 = AtomicU64::new(0);

/// The counts so far; subtract an earlier one to measure a stretch of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Starts of `traffic_server`, until it proxied the readiness probe.
    pub starts: u64,
    /// Their time, summed.
    pub start_time: Duration,
    /// Requests answered.
    pub requests: u64,
    /// Their time once ATS ran (a start before a request is not in it), summed.
    pub request_time: Duration,
    /// Containers started (`ats:8.1`, `ats:9.2`), until their supervisor listened and the
    /// namespace was joined.
    pub containers: u64,
    /// Their time, summed.
    pub container_time: Duration,
}

impl std::ops::Sub for Tally {
    type Output = Tally;

    fn sub(self, earlier: Tally) -> Tally {
        Tally {
            starts: self.starts.saturating_sub(earlier.starts),
            start_time: self.start_time.saturating_sub(earlier.start_time),
            requests: self.requests.saturating_sub(earlier.requests),
            request_time: self.request_time.saturating_sub(earlier.request_time),
            containers: self.containers.saturating_sub(earlier.containers),
            container_time: self.container_time.saturating_sub(earlier.container_time),
        }
    }
}

/// The counts of every ats verifier in this process so far.
pub fn tally() -> Tally {
    let nanos = |n: &AtomicU64| Duration::from_nanos(n.load(Ordering::SeqCst));
    Tally {
        starts: STARTS.load(Ordering::SeqCst),
        start_time: nanos(&START_NANOS),
        requests: REQUESTS.load(Ordering::SeqCst),
        request_time: nanos(&REQUEST_NANOS),
        containers: CONTAINERS.load(Ordering::SeqCst),
        container_time: nanos(&CONTAINER_NANOS),
    }
}

fn add(count: &AtomicU64, total: &AtomicU64, took: Duration) {
    count.fetch_add(1, Ordering::SeqCst);
    total.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
}

/// A timing note on stderr when `MRALAB_ATS_TIMINGS` is set; a closed stderr is no reason to
/// panic.
fn note(what: &str, took: Duration) {
    if std::env::var_os("MRALAB_ATS_TIMINGS").is_some() {
        let ms = took.as_secs_f64() * 1000.0;
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("ats: {what} in {ms:.0} ms\n"));
    }
}

/// One start of `traffic_server` took `took`.
pub(super) fn started(took: Duration) {
    add(&STARTS, &START_NANOS, took);
    note("started", took);
}

/// One container took `took` to start.
pub(super) fn container_started(took: Duration) {
    add(&CONTAINERS, &CONTAINER_NANOS, took);
    note("container started", took);
}

/// One request took `took` once ATS ran.
pub(super) fn requested(took: Duration) {
    add(&REQUESTS, &REQUEST_NANOS, took);
    note("request", took);
}
