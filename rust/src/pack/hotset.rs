//! Page-cache policy for a mapped pack: keep the training set in RAM across processes.
//!
//! The hotset is the compressed pack itself (about 20 GB for 500K images): the page cache
//! shares it between every process that maps it, so DDP ranks and DataLoader workers hold
//! one copy. `madvise(WILLNEED)` starts reading it in ahead of the first epoch; `mlock` pins
//! the start of it where the memlock limit allows, and `warm` faults in every page now.
//! Linux semantics; other Unix systems get the same calls, other platforms report no-ops.

use std::io;
use std::ops::Range;

use memmap2::Mmap;
use rayon::prelude::*;

use super::PAGE;
use crate::error::Error;

/// What [`super::PackReader::advise`] should do with the data region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `MADV_NORMAL` and no locked pages: the page cache decides.
    None,
    /// `MADV_WILLNEED` on the data region, and `mlock` of its first `lock_bytes` bytes
    /// (rounded down to whole pages, at most the data region) when `lock_bytes > 0`.
    Hotset { lock_bytes: u64 },
}

impl Policy {
    /// Parses the config name ("none" or "hotset"); the error lists the valid ones.
    pub fn parse(name: &str, lock_bytes: u64) -> Result<Policy, Error> {
        match name {
            "none" => Ok(Policy::None),
            "hotset" => Ok(Policy::Hotset { lock_bytes }),
            other => Err(Error::invalid(format!(
                "unknown cache policy {other:?} (valid: \"none\", \"hotset\")"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Hotset { .. } => "hotset",
        }
    }
}

/// What an advise call did; a refused `mlock` is reported here, not raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviseReport {
    pub policy: &'static str,
    /// `MADV_WILLNEED` was applied to the data region.
    pub willneed: bool,
    /// Bytes of the data region that were asked to be locked (after rounding and capping).
    pub lock_requested: u64,
    /// Bytes now locked in RAM.
    pub locked_bytes: u64,
    /// Why locking failed, in one line for the log (e.g. `EPERM ...`), if it did.
    pub lock_error: Option<String>,
}

/// Applies `policy` to `range` of `map`. `locked` holds the bytes this reader locked before
/// (from the start of `range`); they are unlocked first, so a smaller budget shrinks the lock.
pub(crate) fn advise(
    map: &Mmap,
    range: Range<usize>,
    policy: Policy,
    locked: &mut usize,
) -> io::Result<AdviseReport> {
    let mut report = AdviseReport {
        policy: policy.as_str(),
        willneed: false,
        lock_requested: 0,
        locked_bytes: 0,
        lock_error: None,
    };
    if *locked > 0 {
        os::munlock(map, range.start, *locked)?;
        *locked = 0;
    }
    match policy {
        Policy::None => {
            os::advise(map, &range, false)?;
        }
        Policy::Hotset { lock_bytes } => {
            report.willneed = os::advise(map, &range, true)?;
            let want = usize::try_from(lock_bytes / PAGE * PAGE)
                .unwrap_or(usize::MAX)
                .min(range.len());
            report.lock_requested = want as u64;
            if want > 0 {
                match os::mlock(map, range.start, want) {
                    Ok(()) => {
                        *locked = want;
                        report.locked_bytes = want as u64;
                    }
                    Err(e) => report.lock_error = Some(describe_lock_error(&e, want)),
                }
            }
        }
    }
    Ok(report)
}

/// Touches one byte per page of `bytes` on `threads` threads; returns `bytes.len()`.
pub(crate) fn warm(bytes: &[u8], threads: usize) -> Result<u64, Error> {
    // 1 MiB per task: enough work to amortise scheduling, small enough to balance 2-16 cores.
    const CHUNK: usize = 1 << 20;
    let pool = crate::threads::pool(threads, "pack-warm")?;
    let sum = pool.install(|| {
        bytes
            .par_chunks(CHUNK)
            .map(|chunk| {
                chunk
                    .iter()
                    .step_by(PAGE as usize)
                    .fold(0u64, |acc, &b| acc.wrapping_add(u64::from(b)))
            })
            .reduce(|| 0, u64::wrapping_add)
    });
    // The sum is otherwise unused: without this the reads could be optimised away.
    std::hint::black_box(sum);
    Ok(bytes.len() as u64)
}

fn describe_lock_error(e: &io::Error, want: usize) -> String {
    let name = match e.raw_os_error() {
        Some(code) if code == os::EPERM => "EPERM",
        Some(code) if code == os::ENOMEM => "ENOMEM",
        Some(code) if code == os::EAGAIN => "EAGAIN",
        _ => "error",
    };
    let limit = match os::memlock_limit() {
        Some(u64::MAX) => "unlimited".to_owned(),
        Some(n) => format!("{n} bytes"),
        None => "unknown".to_owned(),
    };
    format!(
        "{name}: mlock of {want} bytes refused ({e}); RLIMIT_MEMLOCK is {limit}: raise it \
         (ulimit -l, or memlock in the container/systemd settings) or lower lock_bytes; \
         the pages stay in the page cache unlocked"
    )
}

#[cfg(unix)]
mod os {
    use std::io;
    use std::ops::Range;

    use memmap2::{Advice, Mmap};

    pub const EPERM: i32 = libc::EPERM;
    pub const ENOMEM: i32 = libc::ENOMEM;
    pub const EAGAIN: i32 = libc::EAGAIN;

    /// `MADV_WILLNEED` (or `MADV_NORMAL`) on `range`; returns whether WILLNEED was applied.
    pub fn advise(map: &Mmap, range: &Range<usize>, willneed: bool) -> io::Result<bool> {
        if range.is_empty() {
            return Ok(false);
        }
        let advice = if willneed {
            Advice::WillNeed
        } else {
            Advice::Normal
        };
        map.advise_range(advice, range.start, range.len())?;
        Ok(willneed)
    }

    pub fn mlock(map: &Mmap, start: usize, len: usize) -> io::Result<()> {
        let region = checked(map, start, len)?;
        // SAFETY: `region` lies inside the live mapping (checked above); mlock only pins
        // pages and changes no memory.
        let rc = unsafe { libc::mlock(region.as_ptr().cast(), region.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn munlock(map: &Mmap, start: usize, len: usize) -> io::Result<()> {
        let region = checked(map, start, len)?;
        // SAFETY: as for mlock.
        let rc = unsafe { libc::munlock(region.as_ptr().cast(), region.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn checked(map: &Mmap, start: usize, len: usize) -> io::Result<&[u8]> {
        start
            .checked_add(len)
            .and_then(|end| map.get(start..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range outside the map"))
    }

    /// The soft RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited).
    pub fn memlock_limit() -> Option<u64> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit struct that we own.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
        if rc != 0 {
            return None;
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on some targets
        Some(if lim.rlim_cur == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            lim.rlim_cur as u64
        })
    }
}

#[cfg(not(unix))]
mod os {
    //! No madvise or mlock here: the page cache decides, and `advise` reports that.
    use std::io;
    use std::ops::Range;

    use memmap2::Mmap;

    pub const EPERM: i32 = -1;
    pub const ENOMEM: i32 = -2;
    pub const EAGAIN: i32 = -3;

    pub fn advise(_map: &Mmap, _range: &Range<usize>, _willneed: bool) -> io::Result<bool> {
        Ok(false)
    }

    pub fn mlock(_map: &Mmap, _start: usize, _len: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "mlock is not available on this platform",
        ))
    }

    pub fn munlock(_map: &Mmap, _start: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }

    pub fn memlock_limit() -> Option<u64> {
        None
    }
}
