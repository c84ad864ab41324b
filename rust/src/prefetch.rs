//! Batch prefetch: a persistent thread pool fills a ring of preallocated batch buffers.
//!
//! The consumer (Python's `PackLoader`) owns the memory: one images buffer holding `ring`
//! slots of `batch_size` samples of `sample_bytes` each (pinned when CUDA is present) and
//! one labels buffer of `ring * batch_size` i64. Work is cut per image, not per batch, so
//! every thread stays busy until the last image of an epoch, and the batch the consumer
//! waits for is always the one being finished first.
//!
//! Protocol, with `b` a batch number in the epoch and `slot = b % ring`:
//! - workers take work units (one image of one batch) in order; a unit of batch `b` may be
//!   started only once the consumer has released batch `b - ring` (the slot's last user);
//! - when the last image of batch `b` is written, the batch is ready;
//! - `next_batch` returns ready batches in order; `release` hands the oldest returned batch
//!   back, after which its slot may be overwritten.
//!
//! That protocol is what makes the one `unsafe` block sound: a (slot, position) region is
//! written by exactly one worker while no one else reads or writes it.
//!
//! Errors: a loader that cannot go on (a run of unreadable records, a worker that panicked)
//! reports [`Error::Loader`]; a batch that is not ready yet is not an error but
//! [`NextBatch::NotYet`], so the caller can check for Ctrl-C and ask again.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::order::{batch_count, epoch_order};

/// Where samples come from: index -> label and pixels written into a batch slot.
pub trait SampleSource: Send + Sync + 'static {
    /// Per-thread state (a JPEG decoder with its scratch buffers, say).
    type Worker: Send + 'static;

    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn new_worker(&self) -> Result<Self::Worker, Error>;
    /// Write sample `index` for `epoch` into `dst` (exactly `sample_bytes`); return its label.
    fn load(
        &self,
        worker: &mut Self::Worker,
        index: usize,
        epoch: u64,
        dst: &mut [u8],
    ) -> Result<i64, Error>;
}

/// How the loader walks the data.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub threads: usize,
    pub ring: usize,
    pub sample_bytes: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub drop_last: bool,
    pub rank: usize,
    pub world_size: usize,
    /// Samples tried in place of a corrupt one before the loader gives up on a position.
    pub max_substitutes: usize,
}

/// A ready batch: its slot in the ring, its number in the epoch and how many samples it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub slot: usize,
    pub number: usize,
    pub len: usize,
}

/// What [`Loader::next_batch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextBatch {
    /// The next batch is in its slot, ready to read.
    Ready(Batch),
    /// Every batch of the epoch has been handed out.
    EpochDone,
    /// The wait ran out before the batch was complete: ask again.
    NotYet,
}

/// Counters the Python side reports (skips are never fatal but always visible).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderStats {
    pub samples: u64,
    pub skipped: u64,
    pub last_error: Option<String>,
}

/// The memory the consumer lent us. Raw pointers: the consumer keeps the buffers alive and
/// unmoved for the loader's lifetime (python/loader.rs holds the Python objects).
struct Buffers {
    images: *mut u8,
    labels: *mut i64,
}

// SAFETY: the pointers are only dereferenced for disjoint (slot, position) regions as the
// module-level protocol describes; the buffers outlive the loader.
unsafe impl Send for Buffers {}
unsafe impl Sync for Buffers {}

/// The epoch being served.
#[derive(Default)]
struct EpochState {
    generation: u64,
    epoch: u64,
    order: Arc<Vec<usize>>,
    batches: usize,
    next_unit: usize,
    in_flight: usize,
    done: Vec<usize>,
    returned: usize,
    released: usize,
    failed: Option<String>,
    stats: LoaderStats,
}

struct Shared<S: SampleSource> {
    source: Arc<S>,
    cfg: LoaderConfig,
    buffers: Buffers,
    state: Mutex<EpochState>,
    work_cv: Condvar,
    ready_cv: Condvar,
    stop: AtomicBool,
}

/// The prefetching loader. Dropping it stops and joins its threads.
pub struct Loader<S: SampleSource> {
    shared: Arc<Shared<S>>,
    threads: Vec<JoinHandle<()>>,
}

impl<S: SampleSource> Loader<S> {
    /// Start the worker threads over buffers of `ring * batch_size * sample_bytes` bytes
    /// (images) and `ring * batch_size` i64 (labels).
    ///
    /// # Safety
    /// `images` and `labels` must point to buffers of at least those sizes that stay valid,
    /// unmoved and otherwise untouched while a batch is not handed out, for the loader's
    /// whole lifetime.
    pub unsafe fn new(
        source: Arc<S>,
        cfg: LoaderConfig,
        images: *mut u8,
        labels: *mut i64,
    ) -> Result<Self, Error> {
        // SAFETY: the caller's promise about the buffers, passed on unchanged.
        unsafe { Self::start(source, cfg, images, labels, spawn_named) }
    }

    /// [`Loader::new`] with the way threads are started as a parameter, so the tests can
    /// make a spawn fail part-way.
    ///
    /// # Safety
    /// As for [`Loader::new`].
    unsafe fn start(
        source: Arc<S>,
        cfg: LoaderConfig,
        images: *mut u8,
        labels: *mut i64,
        mut spawn: impl FnMut(String, WorkerBody) -> io::Result<JoinHandle<()>>,
    ) -> Result<Self, Error> {
        validate(&cfg)?;
        let shared = Arc::new(Shared {
            source,
            state: Mutex::new(EpochState {
                done: vec![0; cfg.ring],
                ..EpochState::default()
            }),
            cfg,
            buffers: Buffers { images, labels },
            work_cv: Condvar::new(),
            ready_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        // The loader exists before its first thread starts: if a later worker or thread
        // cannot be made, the early return drops it, and `Drop` stops and joins the threads
        // already running (left alone, they would wait for work forever).
        let mut loader = Loader {
            threads: Vec::with_capacity(shared.cfg.threads),
            shared,
        };
        for n in 0..loader.shared.cfg.threads {
            let worker = loader.shared.source.new_worker()?;
            let for_thread = Arc::clone(&loader.shared);
            let body: WorkerBody = Box::new(move || work(for_thread, worker));
            let handle = spawn(format!("pillsnap-loader-{n}"), body)
                .map_err(|e| Error::internal(format!("cannot start loader thread {n}: {e}")))?;
            loader.threads.push(handle);
        }
        Ok(loader)
    }

    /// Batches per epoch for this rank.
    pub fn batches_per_epoch(&self) -> usize {
        let samples = epoch_order(self.shared.source.len(), &self.shared.cfg, 0).len();
        batch_count(samples, &self.shared.cfg)
    }

    /// Begin serving `epoch` at batch `start_batch` (0: all of it); an unfinished epoch is
    /// abandoned (its work drained first). From `start_batch` on, the batches are those an
    /// uninterrupted epoch serves (order and crops depend on seed, epoch and index only),
    /// and the skipped ones are never decoded: their units are simply not handed out.
    pub fn start_epoch(&self, epoch: u64, start_batch: usize) -> Result<(), Error> {
        let cfg = &self.shared.cfg;
        let order = Arc::new(epoch_order(self.shared.source.len(), cfg, epoch));
        let batches = batch_count(order.len(), cfg);
        if start_batch > batches {
            return Err(Error::invalid(format!(
                "start_batch {start_batch} is past the end of an epoch of {batches} batches"
            )));
        }
        let mut st = self.lock()?;
        st.generation += 1;
        st.batches = 0; // nothing of the old epoch is startable any more
        while st.in_flight > 0 {
            st = wait(&self.shared.ready_cv, st, Duration::from_millis(50))?;
        }
        st.epoch = epoch;
        st.batches = batches;
        st.order = order;
        // Batch numbers stay those of the whole epoch (slot = number % ring): starting
        // part-way is the state the epoch would be in with `start_batch` batches released.
        st.next_unit = start_batch * cfg.batch_size;
        st.done.iter_mut().for_each(|d| *d = 0);
        st.returned = start_batch;
        st.released = start_batch;
        st.failed = None;
        drop(st);
        self.shared.work_cv.notify_all();
        Ok(())
    }

    /// Wait (at most `timeout`) for the next batch. At most `ring` batches may be out at
    /// once; asking for one more is an [`Error::InvalidArgument`].
    pub fn next_batch(&self, timeout: Duration) -> Result<NextBatch, Error> {
        let mut st = self.lock()?;
        if let Some(reason) = st.failed.take() {
            return Err(Error::loader(reason));
        }
        if st.returned >= st.batches {
            return Ok(NextBatch::EpochDone);
        }
        if st.returned - st.released >= self.shared.cfg.ring {
            return Err(Error::invalid(format!(
                "all {} ring slots are handed out: release a batch before asking for the next",
                self.shared.cfg.ring
            )));
        }
        let number = st.returned;
        let slot = number % self.shared.cfg.ring;
        let len = self.batch_len(&st, number);
        let deadline = std::time::Instant::now() + timeout;
        while st.done[slot] < len {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(NextBatch::NotYet);
            }
            st = wait(&self.shared.ready_cv, st, left)?;
            if let Some(reason) = st.failed.take() {
                return Err(Error::loader(reason));
            }
        }
        st.returned += 1;
        Ok(NextBatch::Ready(Batch { slot, number, len }))
    }

    /// Hand the oldest returned batch back so its slot can be refilled.
    pub fn release(&self) -> Result<(), Error> {
        let mut st = self.lock()?;
        if st.released >= st.returned {
            return Err(Error::invalid("release() without a batch handed out"));
        }
        let slot = st.released % self.shared.cfg.ring;
        st.done[slot] = 0;
        st.released += 1;
        drop(st);
        self.shared.work_cv.notify_all();
        Ok(())
    }

    pub fn stats(&self) -> Result<LoaderStats, Error> {
        Ok(self.lock()?.stats.clone())
    }

    /// The source the threads read from.
    pub fn source(&self) -> &S {
        &self.shared.source
    }

    fn batch_len(&self, st: &EpochState, number: usize) -> usize {
        let b = self.shared.cfg.batch_size;
        (st.order.len() - number * b).min(b)
    }

    fn lock(&self) -> Result<MutexGuard<'_, EpochState>, Error> {
        lock(&self.shared.state)
    }
}

impl<S: SampleSource> Drop for Loader<S> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.work_cv.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join(); // a worker that panicked has already reported it
        }
    }
}

fn validate(cfg: &LoaderConfig) -> Result<(), Error> {
    if cfg.batch_size == 0 || cfg.threads == 0 || cfg.ring == 0 || cfg.sample_bytes == 0 {
        return Err(Error::invalid(
            "batch_size, threads, ring and sample_bytes must be positive",
        ));
    }
    if cfg.world_size == 0 || cfg.rank >= cfg.world_size {
        return Err(Error::invalid("rank must be in 0..world_size"));
    }
    Ok(())
}

/// What a loader thread runs.
type WorkerBody = Box<dyn FnOnce() + Send + 'static>;

/// Starts a named thread: how [`Loader::new`] starts its workers.
fn spawn_named(name: String, body: WorkerBody) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(body)
}

/// The loader's state was left poisoned by a panic: the loader cannot go on.
fn poisoned() -> Error {
    Error::loader("loader state poisoned by a panic")
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| poisoned())
}

fn wait<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> Result<MutexGuard<'a, T>, Error> {
    cv.wait_timeout(guard, timeout)
        .map(|(g, _)| g)
        .map_err(|_| poisoned())
}

/// One work unit handed to a worker.
struct Unit {
    generation: u64,
    epoch: u64,
    number: usize,
    position: usize,
    slot: usize,
    index: usize,
    order: Arc<Vec<usize>>,
}

fn work<S: SampleSource>(shared: Arc<Shared<S>>, mut worker: S::Worker) {
    while let Some(unit) = take_unit(&shared) {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| fill(&shared, &mut worker, &unit)));
        let Ok(mut st) = lock(&shared.state) else {
            return;
        };
        st.in_flight -= 1;
        match outcome {
            Ok((skipped, error)) => {
                st.stats.samples += 1;
                st.stats.skipped += skipped;
                if let Some(message) = error {
                    st.stats.last_error = Some(message.clone());
                    if skipped > shared.cfg.max_substitutes as u64 {
                        st.failed = Some(message); // nothing readable nearby: stop loudly
                    }
                }
            }
            Err(payload) => {
                st.failed = Some(Error::from_panic("loading a sample", payload).to_string());
            }
        }
        if unit.generation == st.generation {
            st.done[unit.slot] += 1;
        }
        drop(st);
        shared.ready_cv.notify_all();
    }
}

/// Block until a unit may start (its slot is free) or the loader stops.
fn take_unit<S: SampleSource>(shared: &Shared<S>) -> Option<Unit> {
    let cfg = &shared.cfg;
    let mut st = lock(&shared.state).ok()?;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        let total = st.order.len();
        let unit = st.next_unit;
        let batch = unit / cfg.batch_size;
        let startable = unit < total && batch < st.batches && batch < st.released + cfg.ring;
        if startable {
            st.next_unit += 1;
            st.in_flight += 1;
            return Some(Unit {
                generation: st.generation,
                epoch: st.epoch,
                number: unit,
                position: unit % cfg.batch_size,
                slot: batch % cfg.ring,
                index: st.order[unit],
                order: Arc::clone(&st.order),
            });
        }
        st = shared
            .work_cv
            .wait_timeout(st, Duration::from_millis(100))
            .ok()?
            .0;
    }
}

/// Load one sample into its region, substituting the next samples of the epoch for a
/// corrupt one. Returns (samples skipped, last error message).
fn fill<S: SampleSource>(
    shared: &Shared<S>,
    worker: &mut S::Worker,
    unit: &Unit,
) -> (u64, Option<String>) {
    let cfg = &shared.cfg;
    let region = unit.slot * cfg.batch_size + unit.position;
    // SAFETY: this (slot, position) region belongs to this unit alone until its batch is
    // released (module protocol); offsets are inside the buffers validated in
    // python/loader.rs.
    let (dst, label) = unsafe {
        (
            std::slice::from_raw_parts_mut(
                shared.buffers.images.add(region * cfg.sample_bytes),
                cfg.sample_bytes,
            ),
            &mut *shared.buffers.labels.add(region),
        )
    };
    let mut skipped = 0;
    let mut last_error = None;
    let mut index = unit.index;
    for attempt in 0..=cfg.max_substitutes {
        match shared.source.load(worker, index, unit.epoch, dst) {
            Ok(value) => {
                *label = value;
                return (skipped, last_error);
            }
            Err(err) => {
                skipped += 1;
                last_error = Some(err.to_string());
                // The next samples of the epoch stand in: deterministic whatever the threads.
                index = unit.order[(unit.number + attempt + 1) % unit.order.len()];
            }
        }
    }
    dst.fill(0);
    *label = -1; // the loss ignores it; `failed` reports the run of bad records
    (skipped, last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::loader_config as config;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;

    /// Writes its index into every byte (mod 251) and returns it as the label; indices in
    /// `bad` fail like a corrupt record; workers past the first `workers_allowed` cannot
    /// be made.
    struct Fake {
        len: usize,
        bad: HashSet<usize>,
        workers_allowed: usize,
        workers_made: AtomicUsize,
        /// How long each sample takes.
        delay: Duration,
    }

    impl Fake {
        fn new(len: usize, bad: &[usize]) -> Self {
            Fake {
                len,
                bad: bad.iter().copied().collect(),
                workers_allowed: usize::MAX,
                workers_made: AtomicUsize::new(0),
                delay: Duration::ZERO,
            }
        }
    }

    impl SampleSource for Fake {
        type Worker = ();
        fn len(&self) -> usize {
            self.len
        }
        fn new_worker(&self) -> Result<(), Error> {
            if self.workers_made.fetch_add(1, Ordering::SeqCst) >= self.workers_allowed {
                return Err(Error::internal("no more workers"));
            }
            Ok(())
        }
        fn load(&self, _: &mut (), index: usize, _: u64, dst: &mut [u8]) -> Result<i64, Error> {
            if self.bad.contains(&index) {
                return Err(Error::Internal {
                    reason: format!("bad record {index}"),
                });
            }
            std::thread::sleep(self.delay);
            dst.fill((index % 251) as u8);
            Ok(index as i64)
        }
    }

    struct Harness {
        loader: Loader<Fake>,
        images: Vec<u8>,
        labels: Vec<i64>,
    }

    fn harness(len: usize, bad: &[usize], cfg: LoaderConfig) -> Result<Box<Harness>, Error> {
        let source = Arc::new(Fake::new(len, bad));
        let mut images = vec![0u8; cfg.ring * cfg.batch_size * cfg.sample_bytes];
        let mut labels = vec![0i64; cfg.ring * cfg.batch_size];
        // SAFETY: the Vecs live in the same Box as the loader and are never resized; the
        // loader field is dropped (threads joined) before them.
        let loader = unsafe { Loader::new(source, cfg, images.as_mut_ptr(), labels.as_mut_ptr())? };
        Ok(Box::new(Harness {
            loader,
            images,
            labels,
        }))
    }

    /// The next batch, None at the end of the epoch; waiting more than 10 s is a failure.
    fn next(loader: &Loader<Fake>) -> Result<Option<Batch>, Error> {
        match loader.next_batch(Duration::from_secs(10))? {
            NextBatch::Ready(batch) => Ok(Some(batch)),
            NextBatch::EpochDone => Ok(None),
            NextBatch::NotYet => Err(Error::internal("no batch within 10 s")),
        }
    }

    /// Every (label, first pixel byte) the loader hands out in one epoch, batch by batch.
    fn run_epoch(h: &Harness, epoch: u64) -> Result<Vec<Vec<i64>>, Error> {
        run_epoch_from(h, epoch, 0)
    }

    /// [`run_epoch`] from batch `start` on.
    fn run_epoch_from(h: &Harness, epoch: u64, start: usize) -> Result<Vec<Vec<i64>>, Error> {
        h.loader.start_epoch(epoch, start)?;
        let cfg = h.loader.shared.cfg.clone();
        let mut out = Vec::new();
        while let Some(batch) = next(&h.loader)? {
            let base = batch.slot * cfg.batch_size;
            let labels: Vec<i64> = h.labels[base..base + batch.len].to_vec();
            for (k, &label) in labels.iter().enumerate() {
                let byte = h.images[(base + k) * cfg.sample_bytes];
                assert_eq!(i64::from(byte), label % 251, "pixels match the label");
            }
            out.push(labels);
            h.loader.release()?;
        }
        Ok(out)
    }

    #[test]
    fn one_epoch_covers_every_sample_once() -> Result<(), Error> {
        let h = harness(103, &[], config(10, 3, 2))?;
        let batches = run_epoch(&h, 0)?;
        assert_eq!(batches.len(), 11);
        assert_eq!(batches[10].len(), 3);
        let mut seen: Vec<i64> = batches.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<i64>>());
        Ok(())
    }

    #[test]
    fn shuffle_is_seeded_per_epoch_and_independent_of_threads() -> Result<(), Error> {
        let one = harness(64, &[], config(8, 1, 3))?;
        let four = harness(64, &[], config(8, 4, 3))?;
        assert_eq!(run_epoch(&one, 1)?, run_epoch(&four, 1)?);
        assert_ne!(run_epoch(&one, 1)?, run_epoch(&one, 2)?);
        Ok(())
    }

    #[test]
    fn drop_last_drops_the_partial_batch() -> Result<(), Error> {
        let mut cfg = config(10, 2, 2);
        cfg.drop_last = true;
        let h = harness(25, &[], cfg)?;
        assert_eq!(h.loader.batches_per_epoch(), 2);
        assert!(run_epoch(&h, 0)?.iter().all(|b| b.len() == 10));
        Ok(())
    }

    #[test]
    fn an_epoch_started_at_batch_k_serves_the_rest_of_the_whole_epoch() -> Result<(), Error> {
        // 103 samples in batches of 10: the last batch is partial; ring 3 and start 4 put
        // the first batch served in slot 1, not slot 0.
        let whole = run_epoch(&*harness(103, &[], config(10, 3, 3))?, 2)?;
        for start in [0, 1, 4, 10, 11] {
            let h = harness(103, &[], config(10, 3, 3))?;
            assert_eq!(
                run_epoch_from(&h, 2, start)?,
                whole[start..],
                "start {start}"
            );
            // the skipped batches were never loaded: only the served samples were
            let served = whole[start..].iter().map(Vec::len).sum::<usize>();
            assert_eq!(h.loader.stats()?.samples, served as u64, "start {start}");
        }
        Ok(())
    }

    #[test]
    fn a_start_past_the_epoch_is_refused_and_the_loader_still_works() -> Result<(), Error> {
        let h = harness(30, &[], config(10, 2, 2))?;
        let got = h.loader.start_epoch(0, 4);
        assert!(matches!(got, Err(Error::InvalidArgument { .. })), "{got:?}");
        assert_eq!(run_epoch(&h, 0)?.concat().len(), 30);
        Ok(())
    }

    #[test]
    fn corrupt_samples_are_replaced_and_counted() -> Result<(), Error> {
        let h = harness(40, &[3, 17], config(8, 2, 2))?;
        let batches = run_epoch(&h, 0)?;
        let labels: Vec<i64> = batches.concat();
        assert_eq!(labels.len(), 40);
        assert!(!labels.contains(&3) && !labels.contains(&17));
        let stats = h.loader.stats()?;
        assert_eq!(stats.skipped, 2);
        assert!(stats.last_error.unwrap_or_default().contains("bad record"));
        Ok(())
    }

    #[test]
    fn a_run_of_bad_records_fails_loudly() -> Result<(), Error> {
        let h = harness(6, &[0, 1, 2, 3, 4, 5], config(2, 1, 2))?;
        h.loader.start_epoch(0, 0)?;
        let got = h.loader.next_batch(Duration::from_secs(10));
        assert!(matches!(got, Err(Error::Loader { .. })), "{got:?}");
        Ok(())
    }

    #[test]
    fn abandoning_an_epoch_midway_is_safe() -> Result<(), Error> {
        let h = harness(100, &[], config(10, 3, 2))?;
        h.loader.start_epoch(0, 0)?;
        assert!(next(&h.loader)?.is_some());
        h.loader.release()?;
        assert_eq!(run_epoch(&h, 1)?.concat().len(), 100);
        Ok(())
    }

    #[test]
    fn the_ring_bounds_batches_handed_out() -> Result<(), Error> {
        let h = harness(100, &[], config(10, 2, 2))?;
        h.loader.start_epoch(0, 0)?;
        next(&h.loader)?;
        next(&h.loader)?;
        let third = h.loader.next_batch(Duration::from_secs(10));
        assert!(matches!(third, Err(Error::InvalidArgument { .. })));
        assert!(matches!(h.loader.release(), Ok(())));
        Ok(())
    }

    #[test]
    fn a_batch_not_ready_in_time_is_not_yet() -> Result<(), Error> {
        let cfg = config(2, 1, 2);
        let mut source = Fake::new(4, &[]);
        source.delay = Duration::from_millis(200);
        let mut images = vec![0u8; cfg.ring * cfg.batch_size * cfg.sample_bytes];
        let mut labels = vec![0i64; cfg.ring * cfg.batch_size];
        // SAFETY: the buffers outlive the loader, which is dropped at the end of the block.
        let loader = unsafe {
            Loader::new(
                Arc::new(source),
                cfg,
                images.as_mut_ptr(),
                labels.as_mut_ptr(),
            )?
        };
        loader.start_epoch(0, 0)?;
        assert_eq!(
            loader.next_batch(Duration::from_millis(1))?,
            NextBatch::NotYet
        );
        assert!(next(&loader)?.is_some(), "the same batch once it is done");
        drop(loader);
        Ok(())
    }

    /// Starts loaders whose `fail_at`-th thread (spawn) or worker (source) cannot be made,
    /// and checks that the threads already started were stopped and joined.
    fn start_failing(fail_spawn_at: usize, workers_allowed: usize) -> Result<(), Error> {
        let cfg = config(2, 4, 2);
        let mut source = Fake::new(10, &[]);
        source.workers_allowed = workers_allowed;
        let mut images = vec![0u8; cfg.ring * cfg.batch_size * cfg.sample_bytes];
        let mut labels = vec![0i64; cfg.ring * cfg.batch_size];
        let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        let spawn = move |name: String, body: WorkerBody| {
            if s.load(Ordering::SeqCst) == fail_spawn_at {
                return Err(io::Error::other("refused for the test"));
            }
            s.fetch_add(1, Ordering::SeqCst);
            let f = Arc::clone(&f);
            spawn_named(
                name,
                Box::new(move || {
                    body();
                    f.fetch_add(1, Ordering::SeqCst);
                }),
            )
        };
        // SAFETY: the buffers outlive the call; on failure no loader is left over.
        let result = unsafe {
            Loader::start(
                Arc::new(source),
                cfg,
                images.as_mut_ptr(),
                labels.as_mut_ptr(),
                spawn,
            )
        };
        let Err(err) = result else {
            return Err(Error::internal("the loader started although it should not"));
        };
        assert!(matches!(err, Error::Internal { .. }), "{err:?}");
        let expected = fail_spawn_at.min(workers_allowed);
        assert_eq!(started.load(Ordering::SeqCst), expected);
        // Joined, not just told to stop: every started thread has returned by now.
        assert_eq!(finished.load(Ordering::SeqCst), expected);
        Ok(())
    }

    #[test]
    fn a_thread_that_cannot_start_stops_the_ones_that_did() -> Result<(), Error> {
        start_failing(2, usize::MAX)?;
        start_failing(0, usize::MAX)
    }

    #[test]
    fn a_worker_that_cannot_be_made_stops_the_threads_already_started() -> Result<(), Error> {
        start_failing(usize::MAX, 3)
    }
}
