//! The prefetching loader over a pack (`pillsnap.data.loader.PackLoader` wraps it).
//!
//! The caller lends two buffers (images and labels) that the loader threads write into with
//! the GIL released; they stay exported for the loader's lifetime (see `buffer.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use super::buffer::{HeldBuffer, INT64, UINT8};
use super::reader::{advise, AdviseReport};
use crate::augment::TrainAugment;
use crate::error::Error;
use crate::pack::PackReader;
use crate::pack_source::{Mode, PackSource};
use crate::prefetch::{Loader, LoaderConfig, LoaderStats, NextBatch, SampleSource};
use crate::resize::Layout;

/// How long `next_batch` waits with the GIL released before it checks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// `PackLoader.stats()`.
#[derive(IntoPyObject)]
struct Stats {
    samples: u64,
    skipped: u64,
    last_error: Option<String>,
}

impl From<LoaderStats> for Stats {
    fn from(s: LoaderStats) -> Self {
        Stats {
            samples: s.samples,
            skipped: s.skipped,
            last_error: s.last_error,
        }
    }
}

/// The prefetching loader over a pack.
#[pyclass(name = "PackLoader", module = "pillsnap._native")]
pub(super) struct PyPackLoader {
    loader: Loader<PackSource>,
    records: usize,
    pid: u32,
    // Declared after `loader`, so dropped after its threads are joined.
    _images: HeldBuffer,
    _labels: HeldBuffer,
}

#[pymethods]
impl PyPackLoader {
    #[new]
    #[pyo3(signature = (
        path, images, labels, *, batch_size, image_size, train = true, threads = 0, seed = 0,
        shuffle = true, drop_last = true, ring = 4, rank = 0, world_size = 1, layout = "hwc",
        max_substitutes = 8, crop_scale = (0.08, 1.0), hflip = 0.5
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        images: &Bound<'_, PyAny>,
        labels: &Bound<'_, PyAny>,
        batch_size: usize,
        image_size: u32,
        train: bool,
        threads: usize,
        seed: u64,
        shuffle: bool,
        drop_last: bool,
        ring: usize,
        rank: usize,
        world_size: usize,
        layout: &str,
        max_substitutes: usize,
        crop_scale: (f64, f64),
        hflip: f64,
    ) -> PyResult<Self> {
        let reader = Arc::new(py.detach(|| PackReader::open(&path))?);
        let mode = if train {
            Mode::Train {
                seed,
                augment: train_augment(crop_scale, hflip)?,
            }
        } else {
            Mode::Eval
        };
        let source = Arc::new(PackSource::new(
            reader,
            image_size,
            mode,
            Layout::parse(layout)?,
        ));
        let sample_bytes = source.sample_bytes();
        let slots = ring.saturating_mul(batch_size);
        let images = HeldBuffer::hold(images, slots * sample_bytes, UINT8, "uint8")?;
        let labels = HeldBuffer::hold(labels, slots * 8, INT64, "int64")?;
        let cfg = LoaderConfig {
            batch_size,
            threads: if threads == 0 { num_cpus() } else { threads },
            ring,
            sample_bytes,
            seed,
            shuffle,
            drop_last,
            rank,
            world_size,
            max_substitutes,
        };
        let records = source.len();
        // SAFETY: both buffers were checked to hold `ring * batch_size` samples / labels and
        // stay exported (allocated, unresizable) in `_images` / `_labels` until after the
        // loader is dropped (field order).
        let loader =
            unsafe { Loader::new(source, cfg, images.addr as *mut u8, labels.addr as *mut i64)? };
        Ok(PyPackLoader {
            loader,
            records,
            pid: std::process::id(),
            _images: images,
            _labels: labels,
        })
    }

    fn __len__(&self) -> usize {
        self.records
    }

    fn batches_per_epoch(&self) -> PyResult<usize> {
        self.same_process()?;
        Ok(self.loader.batches_per_epoch())
    }

    /// Serve `epoch` from batch `start_batch` on (a resumed run's position); the skipped
    /// batches are not decoded.
    #[pyo3(signature = (epoch, start_batch = 0))]
    fn start_epoch(&self, py: Python<'_>, epoch: u64, start_batch: usize) -> PyResult<()> {
        self.same_process()?;
        Ok(py.detach(|| self.loader.start_epoch(epoch, start_batch))?)
    }

    /// `(slot, size)` of the next batch, or None at the end of the epoch. Waits with the GIL
    /// released, waking every 100 ms so that Ctrl-C gets through.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<(usize, usize)>> {
        self.same_process()?;
        loop {
            match py.detach(|| self.loader.next_batch(SIGNAL_CHECK))? {
                NextBatch::Ready(batch) => return Ok(Some((batch.slot, batch.len))),
                NextBatch::EpochDone => return Ok(None),
                NextBatch::NotYet => py.check_signals()?,
            }
        }
    }

    fn release(&self) -> PyResult<()> {
        self.same_process()?;
        Ok(self.loader.release()?)
    }

    /// Apply the cache policy to the mapping the loader threads read (see
    /// `PackReader.advise`): "hotset" asks the kernel to read the pack in and may mlock up
    /// to `lock_bytes`; "none" leaves it to the page cache.
    #[pyo3(signature = (policy, lock_bytes = 0))]
    fn advise(&self, py: Python<'_>, policy: &str, lock_bytes: u64) -> PyResult<AdviseReport> {
        advise(py, self.loader.source().reader(), policy, lock_bytes)
    }

    /// `{"samples", "skipped", "last_error"}` since the loader was made.
    fn stats(&self) -> PyResult<Stats> {
        Ok(self.loader.stats()?.into())
    }
}

impl PyPackLoader {
    /// Threads do not survive fork(): refuse clearly instead of waiting forever.
    fn same_process(&self) -> Result<(), Error> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(Error::loader(
            "this PackLoader was created in another process and its threads did not survive \
             fork(); create the loader in the process that iterates it",
        ))
    }
}

/// RandomResizedCrop with area fraction in `crop_scale` (torchvision's ratio range), then a
/// flip with probability `hflip`.
fn train_augment(crop_scale: (f64, f64), hflip: f64) -> Result<TrainAugment, Error> {
    let (lo, hi) = crop_scale;
    if !(0.0 < lo && lo <= hi && hi <= 1.0) {
        return Err(Error::invalid(format!(
            "crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale:?}"
        )));
    }
    if !(0.0..=1.0).contains(&hflip) {
        return Err(Error::invalid(format!(
            "hflip must be in 0..=1, got {hflip}"
        )));
    }
    let mut augment = TrainAugment::default();
    augment.crop.scale = crop_scale;
    augment.flip_p = hflip;
    Ok(augment)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
