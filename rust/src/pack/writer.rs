//! Writing packs, with crash-safe resume.
//!
//! Records go to `NAME.partial` (header page left as zeros, so the file never looks like a
//! pack); each committed record's index entry also goes to `NAME.journal`. `finish` appends
//! the index and metadata, writes the header, fsyncs and renames `NAME.partial` to `NAME`, so
//! a file at `NAME` is always complete. Ordering that makes a kill at any point safe:
//!
//! 1. payload bytes are buffered and, every `checkpoint_every` records, flushed to the OS
//!    (and `fdatasync`ed when `durable`);
//! 2. only then are the journal slots of those records written;
//! 3. on resume, records whose bytes lie past the end of the data file are dropped, the last
//!    [`VERIFY_TAIL`] records are re-checksummed, and the data file is cut after the last good
//!    record.
//!
//! The writer accepts already-encoded payloads: image preprocessing (PNG decode, crop,
//! resize, JPEG encode) runs in front of it, in parallel, and feeds [`PackWriter::add`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::journal::{Journal, JournalConfig, Replay};
use super::{align_up, parse_class_hash, BoxLabel, Header, RecordMeta, Storage};
use super::{BOX_LEN, CLASS_HASH_LEN, ENTRY_LEN, HEADER_LEN, VERSION};
use crate::error::Error;

/// Records re-checksummed on resume: those a crash may have left half on disk.
pub const VERIFY_TAIL: usize = 1024;
/// Bytes buffered before the data file sees a write.
const WRITE_BUFFER: usize = 1 << 20;

/// How to open a [`PackWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    pub storage: Storage,
    /// The class-index hash (16 hex digits, Python's `ClassIndex.hash`).
    pub class_hash: String,
    /// Free-form JSON stored in the pack (short side, quality, manifest hash...).
    pub metadata_json: String,
    /// Continue an interrupted run from its journal instead of starting over.
    pub resume: bool,
    /// Records between checkpoints (journal writes); a kill loses at most this many.
    pub checkpoint_every: u32,
    /// `fdatasync` the data before each checkpoint, so a power loss cannot leave journal
    /// entries for payloads that never reached the disk.
    pub durable: bool,
    /// Creation time for the header; `None`: `SOURCE_DATE_EPOCH` if set, else now.
    pub created_unix: Option<u64>,
}

impl WriterOptions {
    /// Defaults: empty metadata (`{}`), no resume, a checkpoint every 256 records, durable.
    pub fn new(storage: Storage, class_hash: impl Into<String>) -> Self {
        WriterOptions {
            storage,
            class_hash: class_hash.into(),
            metadata_json: "{}".to_owned(),
            resume: false,
            checkpoint_every: 256,
            durable: true,
            created_unix: None,
        }
    }
}

/// One record to add: an encoded payload and what it shows.
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a> {
    pub payload: &'a [u8],
    pub width: u32,
    pub height: u32,
    /// Class index, -1 for none.
    pub label: i32,
    /// Boxes in the stored image's pixels (several for combination images).
    pub boxes: &'a [BoxLabel],
    /// The manifest row this record was made from.
    pub source_id: u64,
}

/// What [`PackWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    pub path: PathBuf,
    pub records: u64,
    pub boxes: u64,
    pub file_bytes: u64,
    /// Sum of the payload lengths.
    pub payload_bytes: u64,
    /// Zero bytes between records that page alignment costs.
    pub padding_bytes: u64,
    /// Records found in the journal when the writer was opened.
    pub resumed_records: u64,
    /// Journal records dropped on resume because their bytes were missing or damaged.
    pub dropped_on_resume: u64,
}

/// Builds one pack; see the module docs for the crash-safety rules.
#[derive(Debug)]
pub struct PackWriter {
    path: PathBuf,
    partial: PathBuf,
    data: BufWriter<File>,
    /// One past the last payload byte written.
    pos: u64,
    entries: Vec<RecordMeta>,
    boxes: Vec<BoxLabel>,
    journal: Journal,
    options: WriterOptions,
    class_hash: [u8; CLASS_HASH_LEN],
    since_checkpoint: u32,
    payload_bytes: u64,
    resumed: u64,
    dropped: u64,
    /// Set when a write failed: the file position is unknown, so only a reopen can go on.
    broken: bool,
    finished: bool,
}

impl PackWriter {
    /// Opens a writer for the pack `path`.
    ///
    /// With `resume`, an interrupted run (both `NAME.partial` and `NAME.journal` present)
    /// continues where its last checkpoint left it; [`PackWriter::len`] tells how many records
    /// are done, so the caller skips those inputs. Without either file, or without `resume`,
    /// the run starts empty (discarding leftovers). A finished `NAME` is only replaced when
    /// this writer finishes.
    pub fn open(path: impl AsRef<Path>, options: WriterOptions) -> Result<PackWriter, Error> {
        let path = path.as_ref().to_path_buf();
        let class_hash = parse_class_hash(&options.class_hash)?;
        let checkpoint_every = options.checkpoint_every.max(1);
        let partial = with_suffix(&path, ".partial");
        let journal_path = with_suffix(&path, ".journal");
        let resumable = options.resume && partial.is_file() && journal_path.is_file();

        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(|e| Error::io(&partial, e))?;
        lock_exclusive(&file, &partial)?;

        let config = JournalConfig {
            storage: options.storage,
            class_hash,
            meta_len: options.metadata_json.len() as u64,
            meta_crc: crc32fast::hash(options.metadata_json.as_bytes()),
        };
        let (journal, replay, dropped) = if resumable {
            let (mut journal, mut replay) = Journal::replay(&journal_path, &config)?;
            let dropped = replay.keep_intact(&mut file, &partial, VERIFY_TAIL)?;
            journal.truncate(replay.entries.len() as u64, replay.boxes.len() as u64)?;
            (journal, replay, dropped)
        } else {
            // The journal first: a kill between the two steps then leaves an empty journal.
            let journal = Journal::create(&journal_path, &config)?;
            (journal, Replay::default(), 0)
        };
        let pos = replay
            .entries
            .last()
            .map_or(HEADER_LEN as u64, RecordMeta::end);
        reset_data_file(&mut file, pos).map_err(|e| Error::io(&partial, e))?;

        let payload_bytes = replay.entries.iter().map(|m| u64::from(m.length)).sum();
        let resumed = replay.entries.len() as u64;
        Ok(PackWriter {
            path,
            partial,
            data: BufWriter::with_capacity(WRITE_BUFFER, file),
            pos,
            entries: replay.entries,
            boxes: replay.boxes,
            journal,
            options: WriterOptions {
                checkpoint_every,
                ..options
            },
            class_hash,
            since_checkpoint: 0,
            payload_bytes,
            resumed,
            dropped,
            broken: false,
            finished: false,
        })
    }

    /// Records written so far, including those resumed from the journal.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The source id of the last record written: where a resumed caller picks up its inputs.
    pub fn last_source_id(&self) -> Option<u64> {
        self.entries.last().map(|m| m.source_id)
    }

    /// Records found in the journal at open.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// Journal records dropped at open because their bytes were missing or damaged.
    pub fn dropped_on_resume(&self) -> u64 {
        self.dropped
    }

    /// Appends one record at the next page boundary; returns its record number.
    pub fn add(&mut self, record: &RecordInput<'_>) -> Result<u64, Error> {
        self.usable()?;
        let length = self.check(record)?;
        let box_start = u32::try_from(self.boxes.len())
            .ok()
            .filter(|start| start.checked_add(record.boxes.len() as u32).is_some())
            .ok_or_else(|| Error::invalid("a pack holds at most 2^32 - 1 boxes"))?;
        let offset = align_up(self.pos);
        let pad = usize::try_from(offset - self.pos).unwrap_or(0);
        const ZEROS: [u8; HEADER_LEN] = [0; HEADER_LEN];
        let written = self
            .data
            .write_all(&ZEROS[..pad])
            .and_then(|()| self.data.write_all(record.payload));
        if let Err(e) = written {
            self.broken = true;
            return Err(Error::io(&self.partial, e));
        }
        let meta = RecordMeta {
            offset,
            length,
            checksum: crc32fast::hash(record.payload),
            width: record.width,
            height: record.height,
            label: record.label,
            box_start,
            box_count: record.boxes.len() as u32,
            source_id: record.source_id,
        };
        let index = self.len();
        self.journal.push(index, &meta, record.boxes);
        self.entries.push(meta);
        self.boxes.extend_from_slice(record.boxes);
        self.pos = meta.end();
        self.payload_bytes += u64::from(length);
        self.since_checkpoint += 1;
        if self.since_checkpoint >= self.options.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(index)
    }

    /// Validates a record before any byte of it is written; returns its length.
    fn check(&self, r: &RecordInput<'_>) -> Result<u32, Error> {
        let length = u32::try_from(r.payload.len()).map_err(|_| {
            Error::invalid(format!(
                "payload of {} bytes is over 4 GiB",
                r.payload.len()
            ))
        })?;
        if r.width == 0 || r.height == 0 {
            return Err(Error::invalid(format!(
                "image size {}x{} has a zero side",
                r.width, r.height
            )));
        }
        let raw_len = u128::from(r.width) * u128::from(r.height) * 3;
        if self.options.storage == Storage::RawRgb && u128::from(length) != raw_len {
            return Err(Error::invalid(format!(
                "raw_rgb payload of {length} bytes for {}x{} pixels (expected {raw_len})",
                r.width, r.height
            )));
        }
        if u32::try_from(r.boxes.len()).is_err() {
            return Err(Error::invalid("more than 2^32 - 1 boxes in one record"));
        }
        if let Some(b) = r
            .boxes
            .iter()
            .find(|b| ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) || b.w < 0.0 || b.h < 0.0)
        {
            return Err(Error::invalid(format!(
                "box {b:?} has a non-finite coordinate or a negative size"
            )));
        }
        Ok(length)
    }

    fn usable(&self) -> Result<(), Error> {
        if self.finished {
            return Err(Error::invalid("the pack writer is already finished"));
        }
        if self.broken {
            return Err(Error::io(
                &self.partial,
                io::Error::other("an earlier write failed; reopen with resume to go on"),
            ));
        }
        Ok(())
    }

    /// Drops the writer as a kill would: no checkpoint, so the journal keeps only what the
    /// last checkpoint recorded. For state that may be inconsistent (a caught panic).
    pub fn abandon(mut self) {
        self.broken = true;
    }

    /// Makes every record added so far resumable: payloads to the OS (and disk when
    /// `durable`), then their journal slots.
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        self.usable()?;
        if !self.journal.has_pending() {
            return Ok(());
        }
        let durable = self.options.durable;
        let flushed = self.data.flush().and_then(|()| {
            if durable {
                self.data.get_ref().sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = flushed {
            self.broken = true;
            return Err(Error::io(&self.partial, e));
        }
        if let Err(e) = self.journal.write_pending() {
            self.broken = true;
            return Err(e);
        }
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Writes the index, metadata and header, syncs, and renames `NAME.partial` to `NAME`;
    /// then removes the journal.
    ///
    /// On error the journal still describes every record, so a rerun with `resume` goes on.
    pub fn finish(mut self) -> Result<PackSummary, Error> {
        self.checkpoint()?;
        let header = self.write_tail().inspect_err(|_| self.broken = true)?;
        let file = self.data.get_ref();
        file.sync_all().map_err(|e| Error::io(&self.partial, e))?;
        fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.finished = true;
        sync_parent_dir(&self.path);
        // A stale journal without its .partial is ignored by the next open, so losing this
        // removal to a crash is harmless.
        if let Err(e) = fs::remove_file(self.journal.path()) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(Error::io(self.journal.path(), e));
            }
        }
        let padding = header.index_offset - HEADER_LEN as u64 - self.payload_bytes;
        Ok(PackSummary {
            path: self.path.clone(),
            records: header.record_count,
            boxes: header.box_count,
            file_bytes: header.file_len,
            payload_bytes: self.payload_bytes,
            padding_bytes: padding,
            resumed_records: self.resumed,
            dropped_on_resume: self.dropped,
        })
    }

    /// Appends index, boxes and metadata after the data and writes the header page.
    fn write_tail(&mut self) -> Result<Header, Error> {
        let io_err = |e| Error::io(&self.partial, e);
        let index_offset = align_up(self.pos);
        let out = &mut self.data;
        let pad = vec![0u8; usize::try_from(index_offset - self.pos).unwrap_or(0)];
        out.write_all(&pad).map_err(io_err)?;
        let mut crc = crc32fast::Hasher::new();
        for m in &self.entries {
            let mut b = [0u8; ENTRY_LEN];
            m.encode(&mut b);
            crc.update(&b);
            out.write_all(&b).map_err(io_err)?;
        }
        for bx in &self.boxes {
            let mut b = [0u8; BOX_LEN];
            bx.encode(&mut b);
            crc.update(&b);
            out.write_all(&b).map_err(io_err)?;
        }
        let meta = self.options.metadata_json.as_bytes();
        out.write_all(meta).map_err(io_err)?;
        out.flush().map_err(io_err)?;

        let records = self.entries.len() as u64;
        let boxes = self.boxes.len() as u64;
        let index_len = records * ENTRY_LEN as u64 + boxes * BOX_LEN as u64;
        let header = Header {
            version: VERSION,
            storage: self.options.storage,
            record_count: records,
            box_count: boxes,
            data_start: HEADER_LEN as u64,
            index_offset,
            index_len,
            meta_offset: index_offset + index_len,
            meta_len: meta.len() as u64,
            file_len: index_offset + index_len + meta.len() as u64,
            created_unix: self.options.created_unix.unwrap_or_else(created_now),
            index_checksum: crc.finalize(),
            meta_checksum: crc32fast::hash(meta),
            class_hash: self.class_hash,
        };
        let file = self.data.get_mut();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header.encode()))
            .map_err(io_err)?;
        Ok(header)
    }
}

impl Drop for PackWriter {
    /// An unfinished writer checkpoints, so a rerun with `resume` loses nothing it added.
    fn drop(&mut self) {
        if !self.finished && !self.broken {
            let _ = self.checkpoint();
        }
    }
}

/// Cuts the data file after the last kept record and blanks the header page, so a file
/// that a killed `finish` had completed no longer looks like a pack; positions for appending.
fn reset_data_file(file: &mut File, pos: u64) -> io::Result<()> {
    file.set_len(pos)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&[0u8; HEADER_LEN])?;
    file.seek(SeekFrom::Start(pos))?;
    Ok(())
}

/// `NAME` + `suffix` (`a/train.pack` -> `a/train.pack.partial`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn created_now() -> u64 {
    // SOURCE_DATE_EPOCH: the reproducible-builds convention, so two runs can be compared
    // byte for byte.
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// Makes the rename durable. Best effort: some filesystems refuse fsync on directories, and
/// the pack itself is already complete and synced.
fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Two writers on one `.partial` would interleave records; the second one is refused.
#[cfg(unix)]
fn lock_exclusive(file: &File, path: &Path) -> Result<(), Error> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own; it changes no memory. The lock goes with the
    // descriptor when the writer drops.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let e = if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(e.kind(), "another PackWriter is writing this pack")
    } else {
        e
    };
    Err(Error::io(path, e))
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File, _path: &Path) -> Result<(), Error> {
    Ok(())
}
