//! The one way the engine starts a pool of worker threads.

use crate::error::Error;

/// A pool of `threads` named threads; `0` uses every core (or `RAYON_NUM_THREADS`).
pub(crate) fn pool(threads: usize, name: &'static str) -> Result<rayon::ThreadPool, Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("pillsnap-{name}-{i}"))
        .build()
        .map_err(|e| Error::Internal {
            reason: format!("cannot start {threads} {name} threads: {e}"),
        })
}
