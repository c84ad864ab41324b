//! The crate's one error type.
//!
//! Every fallible function in the pure-Rust core returns [`Error`], and so does every check
//! of the binding layer; `python/errors.rs` holds the one conversion into Python exceptions
//! (the classes of `pillsnap.errors`, `IndexError`, `TypeError`), chosen by variant.

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};

/// Everything the native engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a file operation (missing file, permissions, I/O error).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file claims to be a PNG or JPEG but its bytes are broken or truncated.
    #[error("{}: corrupt image: {reason}", path.display())]
    CorruptImage { path: PathBuf, reason: String },

    /// The file is not a PNG or JPEG (or uses a flavour of one that PillSnap cannot read).
    #[error("{}: unsupported image: {reason}", path.display())]
    UnsupportedFormat { path: PathBuf, reason: String },

    /// JPEG bytes in memory (a pack record, an upload) are broken or truncated; libjpeg-turbo
    /// warnings count as corruption here (see `jpeg/decode.rs`).
    #[error("corrupt JPEG data: {reason}")]
    CorruptJpeg { reason: String },

    /// JPEG bytes in memory use a flavour the decoder refuses (CMYK, 12-bit, lossless,
    /// or more pixels than the decoder's limit).
    #[error("unsupported JPEG: {reason}")]
    UnsupportedJpeg { reason: String },

    /// Image bytes in memory (an upload) that the native serving decoder leaves to Pillow:
    /// another format, or a flavour or metadata layout it does not read (`photo/`).
    #[error("unsupported image: {reason}")]
    UnsupportedImage { reason: String },

    /// PNG bytes in memory are broken or truncated.
    #[error("corrupt PNG data: {reason}")]
    CorruptPng { reason: String },

    /// An image has more pixels than the caller allows (read from its header).
    #[error(
        "image is {width}x{height} = {} pixels; the limit is {limit}",
        u64::from(*width) * u64::from(*height)
    )]
    TooManyPixels { width: u32, height: u32, limit: u64 },

    /// A pack file ends before the end its header records (a copy or write cut short).
    #[error("{}: truncated pack: {reason}", path.display())]
    PackTruncated { path: PathBuf, reason: String },

    /// The file does not start with the pack magic: it is not a PillSnap pack at all.
    #[error(
        "{}: not a PillSnap pack (starts with {}, expected \"PSNPACK\\0\")",
        path.display(),
        found.escape_ascii()
    )]
    PackBadMagic { path: PathBuf, found: Vec<u8> },

    /// The pack was written in a format version this build cannot read.
    #[error(
        "{}: pack format version {found} is not supported (this build reads version {})",
        path.display(),
        crate::pack::SUPPORTED_VERSIONS.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    PackBadVersion { path: PathBuf, found: u32 },

    /// Stored and recomputed CRC-32 differ: the bytes changed after they were written.
    #[error(
        "{}: pack {what} fails its checksum (stored {stored:#010x}, computed {computed:#010x})",
        path.display()
    )]
    PackChecksum {
        path: PathBuf,
        what: ChecksumTarget,
        stored: u32,
        computed: u32,
    },

    /// The header or an index entry is inconsistent, e.g. a record outside the data region.
    #[error("{}: corrupt pack: {reason}", path.display())]
    PackCorrupt { path: PathBuf, reason: String },

    /// The resume journal of an interrupted writer cannot be used.
    #[error("{}: unusable pack journal: {reason}", path.display())]
    PackJournal { path: PathBuf, reason: String },

    /// A caller passed a value the engine cannot accept (a bad class hash, a payload over 4 GiB,
    /// a writer used after `finish`).
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },

    /// A caller passed a value of the wrong kind (a list where a tuple is needed); `reason`
    /// is the whole message.
    #[error("{reason}")]
    WrongType { reason: String },

    /// A record number past the end of a pack. `index` is what the caller asked for: wide
    /// enough for a record number (u64) and a Python index (negative counts from the end).
    #[error("record {index} is out of range for a pack of {len} records")]
    IndexOutOfRange { index: i128, len: u64 },

    /// A bug in the engine (a caught panic) or the OS refusing to start worker threads.
    #[error("internal error in pillsnap._native: {reason}")]
    Internal { reason: String },

    /// The prefetching loader cannot go on: a run of unreadable records, a worker that
    /// panicked, its state poisoned, or use in a process it was not created in. `reason`
    /// is the whole message (it already says what happened).
    #[error("{reason}")]
    Loader { reason: String },
}

/// Which part of a pack failed its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumTarget {
    Header,
    Index,
    Metadata,
    /// The payload of record `n` (0-based).
    Record(u64),
}

impl std::fmt::Display for ChecksumTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChecksumTarget::Header => f.write_str("header"),
            ChecksumTarget::Index => f.write_str("index"),
            ChecksumTarget::Metadata => f.write_str("metadata"),
            ChecksumTarget::Record(n) => write!(f, "record {n}"),
        }
    }
}

impl Error {
    pub fn io(path: &Path, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        Error::CorruptImage {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(path: &Path, reason: impl Into<String>) -> Self {
        Error::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn corrupt_jpeg(reason: impl Into<String>) -> Self {
        Error::CorruptJpeg {
            reason: reason.into(),
        }
    }

    pub fn unsupported_jpeg(reason: impl Into<String>) -> Self {
        Error::UnsupportedJpeg {
            reason: reason.into(),
        }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal {
            reason: reason.into(),
        }
    }

    pub fn loader(reason: impl Into<String>) -> Self {
        Error::Loader {
            reason: reason.into(),
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::CorruptImage { path, .. }
            | Error::UnsupportedFormat { path, .. }
            | Error::PackTruncated { path, .. }
            | Error::PackBadMagic { path, .. }
            | Error::PackBadVersion { path, .. }
            | Error::PackChecksum { path, .. }
            | Error::PackCorrupt { path, .. }
            | Error::PackJournal { path, .. } => Some(path),
            Error::CorruptJpeg { .. }
            | Error::UnsupportedJpeg { .. }
            | Error::UnsupportedImage { .. }
            | Error::CorruptPng { .. }
            | Error::TooManyPixels { .. }
            | Error::InvalidArgument { .. }
            | Error::WrongType { .. }
            | Error::IndexOutOfRange { .. }
            | Error::Internal { .. }
            | Error::Loader { .. } => None,
        }
    }

    /// Runs `f`, turning a panic into [`Error::Internal`] (with `context()` naming the work)
    /// so that no panic unwinds into Python.
    ///
    /// Callers must not reuse state that `f` may have left half-updated.
    pub fn catch_panic<T>(
        context: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|payload| Err(Error::from_panic(&context(), payload)))
    }

    /// Turns a caught panic payload into an error, so that no panic crosses into Python.
    pub fn from_panic(context: &str, payload: Box<dyn Any + Send>) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_owned());
        Error::Internal {
            reason: format!("panic while {context}: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file() {
        let p = Path::new("/data/a.png");
        let e = Error::corrupt(p, "truncated: missing IEND trailer");
        assert_eq!(
            e.to_string(),
            "/data/a.png: corrupt image: truncated: missing IEND trailer"
        );
        assert_eq!(e.path(), Some(p));
        let e = Error::io(p, io::Error::from(io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with("/data/a.png: "));
    }

    #[test]
    fn panic_payloads_become_internal_errors() {
        let payload = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        let e = Error::from_panic("probing x", payload);
        assert!(matches!(&e, Error::Internal { reason } if reason.contains("boom 7")));
        let payload = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        let e = Error::from_panic("probing x", payload);
        assert!(e.to_string().contains("static"));
    }
}
