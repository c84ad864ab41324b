//! The resume journal, `NAME.journal`, next to an unfinished `NAME.partial`.
//!
//! The index lives at the end of a pack and is written last, so an interrupted writer would
//! lose it. The journal keeps a copy of each committed index entry (and its boxes) in 64-byte
//! slots, each with its own CRC-32; a torn or zeroed slot ends the valid part. Layout:
//!
//! ```text
//! 0    64-byte header: magic b"PSNJRNL\0", journal version u32, pack version u32,
//!      storage u32, reserved u32, class hash [16], metadata length u64, metadata CRC u32,
//!      zeros, CRC-32 of bytes 0..60 at 60
//! 64   slots of 64 bytes, in order; per record: its boxes, then the record slot
//!      box slot:    tag 2 u32, record u64, box (20 bytes) at 12, zeros, CRC-32 of 0..60 at 60
//!      record slot: tag 1 u32, record u64, index entry (48 bytes) at 12, CRC-32 of 0..60 at 60
//! ```
//!
//! A record counts as committed once its record slot is valid; box slots after the last
//! record slot belong to an unfinished record and are dropped on resume. The writer appends
//! slots only after the payloads they describe were handed to the OS (see `writer.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{block, BoxLabel, RecordMeta, Storage, BOX_LEN, CLASS_HASH_LEN, ENTRY_LEN};
use super::{HEADER_LEN, PAGE, VERSION};
use crate::error::Error;

const MAGIC: [u8; 8] = *b"PSNJRNL\0";
const JOURNAL_VERSION: u32 = 1;
const HEADER: usize = 64;
const SLOT: usize = 64;
const TAG_RECORD: u32 = 1;
const TAG_BOX: u32 = 2;

/// What must be the same between an interrupted run and the run that resumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalConfig {
    pub storage: Storage,
    pub class_hash: [u8; CLASS_HASH_LEN],
    pub meta_len: u64,
    pub meta_crc: u32,
}

impl JournalConfig {
    fn encode(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&VERSION.to_le_bytes());
        b[16..20].copy_from_slice(&self.storage.code().to_le_bytes());
        b[24..40].copy_from_slice(&self.class_hash);
        b[40..48].copy_from_slice(&self.meta_len.to_le_bytes());
        b[48..52].copy_from_slice(&self.meta_crc.to_le_bytes());
        seal(&mut b);
        b
    }

    /// Why the journal header `b` does not belong to this run, if it does not.
    fn mismatch(&self, b: &[u8; HEADER]) -> Option<String> {
        if b[0..8] != MAGIC {
            return Some(format!(
                "not a pack journal (starts with {})",
                b[0..8].escape_ascii()
            ));
        }
        if !sealed(b) {
            return Some("its header fails its checksum".to_owned());
        }
        let expected = self.encode();
        if b[8..16] != expected[8..16] {
            return Some("it was written by another version of the pack format".to_owned());
        }
        if b[16..20] != expected[16..20] {
            return Some(format!(
                "the interrupted run used another storage kind (this run: {})",
                self.storage.as_str()
            ));
        }
        if b[24..40] != expected[24..40] {
            return Some(format!(
                "the interrupted run used class hash {}, this run {}",
                b[24..40].escape_ascii(),
                self.class_hash.escape_ascii()
            ));
        }
        if b[40..52] != expected[40..52] {
            return Some("the interrupted run used different metadata_json".to_owned());
        }
        None
    }
}

/// Committed records found in a journal.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub entries: Vec<RecordMeta>,
    pub boxes: Vec<BoxLabel>,
}

impl Replay {
    /// Drops records whose payload is missing from `file` (the data file at `partial`) or,
    /// among the last `verify_tail`, fails its checksum, and everything after the first such
    /// record; returns how many were dropped.
    pub(crate) fn keep_intact(
        &mut self,
        file: &mut File,
        partial: &Path,
        verify_tail: usize,
    ) -> Result<u64, Error> {
        let io_err = |e| Error::io(partial, e);
        let data_len = file.metadata().map_err(io_err)?.len();
        let entries = &self.entries;
        let mut keep = entries
            .iter()
            .position(|m| m.end() > data_len)
            .unwrap_or(entries.len());
        let mut buf = Vec::new();
        let tail = keep.saturating_sub(verify_tail);
        for (i, m) in entries.iter().enumerate().take(keep).skip(tail) {
            buf.resize(m.length as usize, 0);
            file.seek(SeekFrom::Start(m.offset))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(io_err)?;
            if crc32fast::hash(&buf) != m.checksum {
                keep = i;
                break;
            }
        }
        let dropped = (entries.len() - keep) as u64;
        self.entries.truncate(keep);
        let boxes = self
            .entries
            .last()
            .map_or(0, |m| m.box_start as usize + m.box_count as usize);
        self.boxes.truncate(boxes);
        Ok(dropped)
    }
}

/// An open journal; slots are staged in memory and written by [`Journal::write_pending`].
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    pending: Vec<u8>,
}

impl Journal {
    /// Starts an empty journal at `path`, replacing any old one.
    pub fn create(path: &Path, config: &JournalConfig) -> Result<Journal, Error> {
        let io_err = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err)?;
        file.write_all(&config.encode()).map_err(io_err)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            pending: Vec::new(),
        })
    }

    /// Opens the journal at `path` and reads its committed records.
    ///
    /// A journal of another run (storage, class hash, metadata) or a foreign file is
    /// [`Error::PackJournal`]; a torn tail is not an error, it just ends the records.
    pub fn replay(path: &Path, config: &JournalConfig) -> Result<(Journal, Replay), Error> {
        let io_err = |e| Error::io(path, e);
        let bad = |reason: String| Error::PackJournal {
            path: path.to_path_buf(),
            reason,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut head = [0u8; HEADER];
        reader.read_exact(&mut head).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad("shorter than its 64-byte header".to_owned())
            } else {
                io_err(e)
            }
        })?;
        if let Some(why) = config.mismatch(&head) {
            return Err(bad(format!(
                "{why}; delete it and the .partial file to start over, or resume with the \
                 same settings"
            )));
        }
        let mut replay = Replay::default();
        let mut pending = Vec::new();
        let mut slot = [0u8; SLOT];
        loop {
            match reader.read_exact(&mut slot) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io_err(e)),
            }
            if !sealed(&slot) {
                break; // A torn or never-written slot: the committed part ends here.
            }
            let n = replay.entries.len() as u64;
            apply_slot(&slot, n, &mut replay, &mut pending).map_err(|why| {
                bad(format!(
                    "slot for record {n}: {why} (the journal was altered)"
                ))
            })?;
        }
        drop(reader);
        let journal = Journal {
            file,
            path: path.to_path_buf(),
            pending: Vec::new(),
        };
        Ok((journal, replay))
    }

    /// Stages the slots of record `index` (its boxes, then the record itself).
    pub fn push(&mut self, index: u64, meta: &RecordMeta, boxes: &[BoxLabel]) {
        for b in boxes {
            let mut slot = [0u8; SLOT];
            slot[0..4].copy_from_slice(&TAG_BOX.to_le_bytes());
            slot[4..12].copy_from_slice(&index.to_le_bytes());
            let mut enc = [0u8; BOX_LEN];
            b.encode(&mut enc);
            slot[12..12 + BOX_LEN].copy_from_slice(&enc);
            seal(&mut slot);
            self.pending.extend_from_slice(&slot);
        }
        let mut slot = [0u8; SLOT];
        slot[0..4].copy_from_slice(&TAG_RECORD.to_le_bytes());
        slot[4..12].copy_from_slice(&index.to_le_bytes());
        let mut enc = [0u8; ENTRY_LEN];
        meta.encode(&mut enc);
        slot[12..12 + ENTRY_LEN].copy_from_slice(&enc);
        seal(&mut slot);
        self.pending.extend_from_slice(&slot);
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands the staged slots to the OS (no fsync: losing the journal tail only costs
    /// rewriting those records, while the payloads it describes were synced before).
    pub fn write_pending(&mut self) -> Result<(), Error> {
        self.file
            .write_all(&self.pending)
            .map_err(|e| Error::io(&self.path, e))?;
        self.pending.clear();
        Ok(())
    }

    /// Cuts the journal after `records` records holding `boxes` boxes in all, and positions
    /// it for appending.
    pub fn truncate(&mut self, records: u64, boxes: u64) -> Result<(), Error> {
        let len = HEADER as u64 + SLOT as u64 * (records + boxes);
        self.file
            .set_len(len)
            .and_then(|()| self.file.seek(SeekFrom::Start(len)))
            .map_err(|e| Error::io(&self.path, e))?;
        self.pending.clear();
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Adds one checksum-valid slot to `replay`; `Err` means a valid slot that does not fit.
fn apply_slot(
    slot: &[u8; SLOT],
    n: u64,
    replay: &mut Replay,
    pending: &mut Vec<BoxLabel>,
) -> Result<(), String> {
    let tag = block::<4>(slot, 0).map_or(0, |b| u32::from_le_bytes(*b));
    let record = block::<8>(slot, 4).map_or(u64::MAX, |b| u64::from_le_bytes(*b));
    if record != n {
        return Err(format!("names record {record}"));
    }
    match tag {
        TAG_BOX => {
            let b = block::<BOX_LEN>(slot, 12).ok_or("short box slot")?;
            pending.push(BoxLabel::decode(b));
        }
        TAG_RECORD => {
            let m = RecordMeta::decode(block::<ENTRY_LEN>(slot, 12).ok_or("short slot")?);
            let prev_end = replay
                .entries
                .last()
                .map_or(HEADER_LEN as u64, RecordMeta::end);
            if !m.offset.is_multiple_of(PAGE) || m.offset < prev_end {
                return Err(format!(
                    "offset {} is not a page boundary after {prev_end}",
                    m.offset
                ));
            }
            if u64::from(m.box_start) != replay.boxes.len() as u64
                || m.box_count as usize != pending.len()
            {
                return Err(format!(
                    "boxes {}+{} do not match the {} box slots before it",
                    m.box_start,
                    m.box_count,
                    pending.len()
                ));
            }
            replay.boxes.append(pending);
            replay.entries.push(m);
        }
        other => return Err(format!("unknown slot tag {other}")),
    }
    Ok(())
}

fn seal<const N: usize>(b: &mut [u8; N]) {
    let crc = crc32fast::hash(&b[..N - 4]);
    b[N - 4..].copy_from_slice(&crc.to_le_bytes());
}

fn sealed<const N: usize>(b: &[u8; N]) -> bool {
    let stored = block::<4>(b, N - 4).map(|c| u32::from_le_bytes(*c));
    stored == Some(crc32fast::hash(&b[..N - 4]))
}
