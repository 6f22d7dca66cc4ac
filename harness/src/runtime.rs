//! The one tokio runtime of a harness process.
//!
//! Fleets, the front door and the relays of the real traffic server are async; everything above
//! them (scenario runs, labs, verifiers) is synchronous and blocks on this runtime. It sits in the
//! lowest layer so any module may use it without reaching up to the scenario runner.

use std::sync::OnceLock;

/// The runtime the fleets of every scenario in this process run on: two worker threads, named
/// `mralab-fleet`, started on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mralab-fleet")
            .enable_all()
            .build()
            // Invariant: building a runtime fails only when the OS refuses threads or an epoll
            // descriptor; nothing in the harness can run then.
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    })
}
