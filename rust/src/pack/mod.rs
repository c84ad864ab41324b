//! The pack file: PillSnap's memory-mapped "hotset" training store.
//!
//! Every training image is resized and re-encoded once (JPEG, or raw RGB) and written into
//! one pack per split. Loaders map the file read-only; the OS page cache keeps it hot across
//! processes, so DDP ranks and DataLoader workers share one copy in RAM. This module treats
//! each payload as opaque bytes plus metadata: encoding happens in front of the writer.
//!
//! # Format, version 1 (all integers little-endian)
//!
//! ```text
//! offset 0        header, one 4096-byte page (layout below)
//! data_start      records: each payload starts on a 4096-byte boundary, zero padding between
//! index_offset    index: record_count entries of 48 bytes, then box_count boxes of 20 bytes
//!                 (index_offset is page-aligned too, so the data region ends on a page)
//! meta_offset     metadata: UTF-8 JSON object (short side, quality, source manifest hash...)
//! file_len        end of file; nothing may follow
//! ```
//!
//! Header (the rest of the page up to the checksum is reserved, written as zeros):
//!
//! | offset | type     | field                                                      |
//! |-------:|----------|------------------------------------------------------------|
//! | 0      | [u8; 8]  | magic `b"PSNPACK\0"`                                       |
//! | 8      | u32      | format version (1)                                         |
//! | 12     | u32      | flags (none defined in version 1; must be 0)               |
//! | 16     | u32      | storage kind: 0 = JPEG, 1 = raw RGB (HWC, u8)              |
//! | 20     | u32      | record alignment in bytes (4096)                           |
//! | 24     | u64      | record count                                               |
//! | 32     | u64      | box count (rows of the box table)                          |
//! | 40     | u64      | data start (4096)                                          |
//! | 48     | u64      | index offset                                               |
//! | 56     | u64      | index length = 48 × records + 20 × boxes                   |
//! | 64     | u64      | metadata offset (= index offset + index length)           |
//! | 72     | u64      | metadata length                                            |
//! | 80     | u64      | file length (= metadata offset + metadata length)         |
//! | 88     | u64      | creation time, Unix seconds (`SOURCE_DATE_EPOCH` if set)   |
//! | 96     | u32      | CRC-32 of the index (entries and boxes)                    |
//! | 100    | u32      | CRC-32 of the metadata                                     |
//! | 104    | [u8; 16] | class-index hash, 16 ASCII hex digits (`ClassIndex.hash`)  |
//! | 4092   | u32      | CRC-32 of header bytes 0..4092                             |
//!
//! Index entry (48 bytes): offset u64, length u32, CRC-32 of the payload u32, width u32,
//! height u32, label i32 (-1: none), box_start u32, box_count u32, reserved u32 (0),
//! source id u64 (the manifest row). Box (20 bytes): x, y, w, h f32 in the stored image's
//! pixels, label i32.
//!
//! All checksums are CRC-32/ISO-HDLC (the zlib polynomial) from `crc32fast`, which measured
//! about 2.3x faster than hardware CRC-32C (the `crc32c` crate) on the development machine
//! (56 vs 24 GB/s on 40 KB buffers) and is what Python's `zlib.crc32` computes.
//!
//! Why page alignment: a record owns its pages, so `madvise`/`mlock` ranges and `O_DIRECT`
//! reads never drag a neighbour along. It costs about 2 KB of padding per record on average
//! (5 % of a 40 KB JPEG).
//!
//! Readers check the magic, then the version (before the header checksum, so a future
//! version that changes the header layout still gets a clear "unsupported version"), the
//! header checksum, the layout, the index checksum and every index entry against the bounds
//! of the file. Payload checksums are checked lazily ([`PackView::verify`]) because reading
//! every record at open would defeat the mmap.

#[doc(hidden)]
pub mod fuzzing;
mod hotset;
mod journal;
mod reader;
mod writer;

use std::path::Path;

pub use crate::error::ChecksumTarget;
use crate::error::Error;
pub use hotset::{AdviseReport, Policy};
pub use reader::{Boxes, PackReader, PackView, RecordRef};
pub use writer::{PackSummary, PackWriter, RecordInput, WriterOptions};

/// First eight bytes of every pack.
pub const MAGIC: [u8; 8] = *b"PSNPACK\0";
/// The version this build writes.
pub const VERSION: u32 = 1;
/// The versions this build reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];
/// Record alignment and header size: one page on every platform PillSnap runs on.
pub const PAGE: u64 = 4096;
/// Bytes of the header.
pub const HEADER_LEN: usize = 4096;
/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 48;
/// Bytes of one row of the box table.
pub const BOX_LEN: usize = 20;
/// Length of the class-index hash (hex digits).
pub const CLASS_HASH_LEN: usize = 16;

const HEADER_CRC_AT: usize = HEADER_LEN - 4;

/// How the payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// A JPEG file per record.
    Jpeg,
    /// Raw 8-bit RGB pixels, row-major, `width * height * 3` bytes.
    RawRgb,
}

impl Storage {
    /// The name Python uses ("jpeg" or "raw_rgb").
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Jpeg => "jpeg",
            Storage::RawRgb => "raw_rgb",
        }
    }

    /// Parses the Python name; the error lists the valid ones.
    pub fn parse(name: &str) -> Result<Storage, Error> {
        match name {
            "jpeg" => Ok(Storage::Jpeg),
            "raw_rgb" => Ok(Storage::RawRgb),
            other => Err(Error::invalid(format!(
                "unknown storage {other:?} (valid: \"jpeg\", \"raw_rgb\")"
            ))),
        }
    }

    fn code(self) -> u32 {
        match self {
            Storage::Jpeg => 0,
            Storage::RawRgb => 1,
        }
    }

    fn from_code(code: u32) -> Option<Storage> {
        match code {
            0 => Some(Storage::Jpeg),
            1 => Some(Storage::RawRgb),
            _ => None,
        }
    }
}

/// One labelled box of a record, in the stored image's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxLabel {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Class index of the pill in the box (-1: unknown).
    pub label: i32,
}

impl BoxLabel {
    fn encode(&self, out: &mut [u8; BOX_LEN]) {
        out[0..4].copy_from_slice(&self.x.to_le_bytes());
        out[4..8].copy_from_slice(&self.y.to_le_bytes());
        out[8..12].copy_from_slice(&self.w.to_le_bytes());
        out[12..16].copy_from_slice(&self.h.to_le_bytes());
        out[16..20].copy_from_slice(&self.label.to_le_bytes());
    }

    fn decode(b: &[u8; BOX_LEN]) -> BoxLabel {
        let r = Fields(b);
        BoxLabel {
            x: f32::from_bits(r.u32(0)),
            y: f32::from_bits(r.u32(4)),
            w: f32::from_bits(r.u32(8)),
            h: f32::from_bits(r.u32(12)),
            label: r.i32(16),
        }
    }
}

/// One index entry: where a record's payload lies and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Byte offset of the payload in the file (a multiple of [`PAGE`]).
    pub offset: u64,
    /// Payload length in bytes.
    pub length: u32,
    /// CRC-32 of the payload.
    pub checksum: u32,
    pub width: u32,
    pub height: u32,
    /// Class index (-1: none, e.g. a combination image labelled only by its boxes).
    pub label: i32,
    /// First row of this record's boxes in the box table.
    pub box_start: u32,
    pub box_count: u32,
    /// The manifest row this record was made from.
    pub source_id: u64,
}

impl RecordMeta {
    /// One past the last payload byte.
    pub fn end(&self) -> u64 {
        // Saturating: a hostile index may hold any offset, and validation compares this.
        self.offset.saturating_add(u64::from(self.length))
    }

    fn encode(&self, out: &mut [u8; ENTRY_LEN]) {
        out[0..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.length.to_le_bytes());
        out[12..16].copy_from_slice(&self.checksum.to_le_bytes());
        out[16..20].copy_from_slice(&self.width.to_le_bytes());
        out[20..24].copy_from_slice(&self.height.to_le_bytes());
        out[24..28].copy_from_slice(&self.label.to_le_bytes());
        out[28..32].copy_from_slice(&self.box_start.to_le_bytes());
        out[32..36].copy_from_slice(&self.box_count.to_le_bytes());
        out[36..40].fill(0);
        out[40..48].copy_from_slice(&self.source_id.to_le_bytes());
    }

    fn decode(b: &[u8; ENTRY_LEN]) -> RecordMeta {
        let r = Fields(b);
        RecordMeta {
            offset: r.u64(0),
            length: r.u32(8),
            checksum: r.u32(12),
            width: r.u32(16),
            height: r.u32(20),
            label: r.i32(24),
            box_start: r.u32(28),
            box_count: r.u32(32),
            source_id: r.u64(40),
        }
    }
}

/// The decoded, validated header of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub storage: Storage,
    pub record_count: u64,
    pub box_count: u64,
    pub data_start: u64,
    pub index_offset: u64,
    pub index_len: u64,
    pub meta_offset: u64,
    pub meta_len: u64,
    pub file_len: u64,
    pub created_unix: u64,
    pub index_checksum: u32,
    pub meta_checksum: u32,
    /// 16 ASCII hex digits; see [`Header::class_hash_str`].
    pub class_hash: [u8; CLASS_HASH_LEN],
}

impl Header {
    /// The class-index hash as text (validated ASCII hex at parse time).
    pub fn class_hash_str(&self) -> &str {
        std::str::from_utf8(&self.class_hash).unwrap_or("")
    }

    /// Byte range of the record data (header end to index start).
    pub fn data_len(&self) -> u64 {
        self.index_offset - self.data_start
    }

    /// The header page, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16: flags, none in version 1.
        b[16..20].copy_from_slice(&self.storage.code().to_le_bytes());
        b[20..24].copy_from_slice(&(PAGE as u32).to_le_bytes());
        b[24..32].copy_from_slice(&self.record_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.box_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.data_start.to_le_bytes());
        b[48..56].copy_from_slice(&self.index_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.index_len.to_le_bytes());
        b[64..72].copy_from_slice(&self.meta_offset.to_le_bytes());
        b[72..80].copy_from_slice(&self.meta_len.to_le_bytes());
        b[80..88].copy_from_slice(&self.file_len.to_le_bytes());
        b[88..96].copy_from_slice(&self.created_unix.to_le_bytes());
        b[96..100].copy_from_slice(&self.index_checksum.to_le_bytes());
        b[100..104].copy_from_slice(&self.meta_checksum.to_le_bytes());
        b[104..120].copy_from_slice(&self.class_hash);
        let crc = crc32fast::hash(&b[..HEADER_CRC_AT]);
        b[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header at the start of `file` (the whole pack, for its length).
    ///
    /// Checks only the header and how its regions fit the file; the index entries are
    /// checked by [`PackView::parse`].
    pub fn parse(file: &[u8], path: &Path) -> Result<Header, Error> {
        let corrupt = |reason: String| Error::PackCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let head = &file[..file.len().min(MAGIC.len())];
        if head != MAGIC.as_slice() && (head.len() == MAGIC.len() || !MAGIC.starts_with(head)) {
            return Err(Error::PackBadMagic {
                path: path.to_path_buf(),
                found: head.to_vec(),
            });
        }
        let Some(page) = file.first_chunk::<HEADER_LEN>() else {
            return Err(Error::PackTruncated {
                path: path.to_path_buf(),
                reason: format!(
                    "the file has {} bytes, fewer than the {HEADER_LEN}-byte header",
                    file.len()
                ),
            });
        };
        let r = Fields(page);
        // The version comes before the checksum: a later version may lay the header out
        // differently, and its reader deserves "unsupported version", not "bad checksum".
        let version = r.u32(8);
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::PackBadVersion {
                path: path.to_path_buf(),
                found: version,
            });
        }
        let stored = r.u32(HEADER_CRC_AT);
        let computed = crc32fast::hash(&page[..HEADER_CRC_AT]);
        if stored != computed {
            return Err(Error::PackChecksum {
                path: path.to_path_buf(),
                what: ChecksumTarget::Header,
                stored,
                computed,
            });
        }
        let flags = r.u32(12);
        if flags != 0 {
            return Err(corrupt(format!(
                "unknown header flags {flags:#x} (version 1 defines none)"
            )));
        }
        let storage_code = r.u32(16);
        let storage = Storage::from_code(storage_code)
            .ok_or_else(|| corrupt(format!("unknown storage kind {storage_code}")))?;
        let alignment = r.u32(20);
        if u64::from(alignment) != PAGE {
            return Err(corrupt(format!(
                "record alignment {alignment} (version 1 uses {PAGE})"
            )));
        }
        let mut class_hash = [0u8; CLASS_HASH_LEN];
        class_hash.copy_from_slice(&page[104..120]);
        if !class_hash.iter().all(u8::is_ascii_hexdigit) {
            return Err(corrupt(format!(
                "class hash {} is not {CLASS_HASH_LEN} hex digits",
                class_hash.escape_ascii()
            )));
        }
        let header = Header {
            version,
            storage,
            record_count: r.u64(24),
            box_count: r.u64(32),
            data_start: r.u64(40),
            index_offset: r.u64(48),
            index_len: r.u64(56),
            meta_offset: r.u64(64),
            meta_len: r.u64(72),
            file_len: r.u64(80),
            created_unix: r.u64(88),
            index_checksum: r.u32(96),
            meta_checksum: r.u32(100),
            class_hash,
        };
        header.check_layout(file.len() as u64, path)?;
        Ok(header)
    }

    /// Checks that the regions follow each other as version 1 lays them out, and that the
    /// file is exactly as long as the header says.
    fn check_layout(&self, actual_len: u64, path: &Path) -> Result<(), Error> {
        let corrupt = |reason: String| Error::PackCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        if self.data_start < HEADER_LEN as u64 || !self.data_start.is_multiple_of(PAGE) {
            return Err(corrupt(format!(
                "data start {} is not a page boundary after the header",
                self.data_start
            )));
        }
        if self.index_offset < self.data_start || !self.index_offset.is_multiple_of(PAGE) {
            return Err(corrupt(format!(
                "index offset {} is not a page boundary at or after the data start {}",
                self.index_offset, self.data_start
            )));
        }
        let index_len = self
            .record_count
            .checked_mul(ENTRY_LEN as u64)
            .and_then(|n| n.checked_add(self.box_count.checked_mul(BOX_LEN as u64)?));
        if index_len != Some(self.index_len) {
            return Err(corrupt(format!(
                "index length {} does not match {} records and {} boxes",
                self.index_len, self.record_count, self.box_count
            )));
        }
        if self.index_offset.checked_add(self.index_len) != Some(self.meta_offset) {
            return Err(corrupt(format!(
                "metadata offset {} does not follow the index ({} + {})",
                self.meta_offset, self.index_offset, self.index_len
            )));
        }
        if self.meta_offset.checked_add(self.meta_len) != Some(self.file_len) {
            return Err(corrupt(format!(
                "file length {} does not follow the metadata ({} + {})",
                self.file_len, self.meta_offset, self.meta_len
            )));
        }
        if actual_len < self.file_len {
            let part = if actual_len < self.index_offset {
                "the record data"
            } else if actual_len < self.meta_offset {
                "the index"
            } else {
                "the metadata"
            };
            return Err(Error::PackTruncated {
                path: path.to_path_buf(),
                reason: format!(
                    "the file has {actual_len} bytes but its header says {}: cut short in {part}",
                    self.file_len
                ),
            });
        }
        if actual_len > self.file_len {
            return Err(corrupt(format!(
                "{} unexpected bytes after the end the header records ({})",
                actual_len - self.file_len,
                self.file_len
            )));
        }
        Ok(())
    }
}

/// Rounds `n` up to the next multiple of [`PAGE`].
pub(crate) fn align_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Little-endian field reads from a fixed-size block: the indices are constants inside the
/// block, so the conversions cannot fail (and `Fields` never indexes past `N`).
struct Fields<'a, const N: usize>(&'a [u8; N]);

impl<const N: usize> Fields<'_, N> {
    fn bytes<const K: usize>(&self, at: usize) -> [u8; K] {
        let mut out = [0u8; K];
        if let Some(src) = self.0.get(at..at + K) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.bytes(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes(at))
    }
}

/// The `N` bytes at `at`, or `None` past the end.
fn block<const N: usize>(bytes: &[u8], at: usize) -> Option<&[u8; N]> {
    bytes.get(at..)?.first_chunk::<N>()
}

/// Checks a class-index hash: exactly 16 ASCII hex digits.
pub(crate) fn parse_class_hash(hash: &str) -> Result<[u8; CLASS_HASH_LEN], Error> {
    let bytes = hash.as_bytes();
    match bytes.try_into() {
        Ok(arr) if bytes.iter().all(u8::is_ascii_hexdigit) => Ok(arr),
        _ => Err(Error::invalid(format!(
            "class hash {hash:?} is not {CLASS_HASH_LEN} hex digits (use ClassIndex.hash)"
        ))),
    }
}

#[cfg(test)]
mod tests;
