//! Reading packs: validation from a byte slice ([`PackView`]) and the shared memory map
//! ([`PackReader`]) that loaders and Python use.
//!
//! All validation works on `&[u8]`, so the mmap path, the fuzz target and the tests run the
//! same code; after [`PackView::parse`] succeeds, every index entry is known to point inside
//! the file and reading a record cannot fail.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use rayon::prelude::*;

use super::hotset::{self, AdviseReport, Policy};
use super::{block, BoxLabel, ChecksumTarget, Header, RecordMeta, Storage, BOX_LEN, ENTRY_LEN};
use super::{HEADER_LEN, PAGE};
use crate::error::Error;

/// A validated pack in memory (a mapped file or any byte slice).
#[derive(Debug, Clone, Copy)]
pub struct PackView<'a> {
    bytes: &'a [u8],
    header: Header,
    path: &'a Path,
}

/// One record, borrowed from the pack without copying.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Record number (0-based).
    pub index: u64,
    /// The payload as stored (a JPEG file, or raw RGB pixels).
    pub bytes: &'a [u8],
    pub meta: RecordMeta,
    boxes: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// This record's boxes, decoded on the fly from the box table.
    pub fn boxes(&self) -> Boxes<'a> {
        Boxes(self.boxes.chunks_exact(BOX_LEN))
    }
}

/// Iterator over the boxes of one record.
#[derive(Debug, Clone)]
pub struct Boxes<'a>(std::slice::ChunksExact<'a, u8>);

impl Iterator for Boxes<'_> {
    type Item = BoxLabel;

    fn next(&mut self) -> Option<BoxLabel> {
        let chunk = self.0.next()?;
        chunk.first_chunk::<BOX_LEN>().map(BoxLabel::decode)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Boxes<'_> {}

impl<'a> PackView<'a> {
    /// Validates `bytes` as a whole pack: header, layout, index and metadata checksums, and
    /// every index entry against the bounds of the file. `path` only names the file in errors.
    ///
    /// Payload checksums are not checked here; see [`PackView::verify`].
    pub fn parse(bytes: &'a [u8], path: &'a Path) -> Result<Self, Error> {
        let header = Header::parse(bytes, path)?;
        let view = PackView {
            bytes,
            header,
            path,
        };
        view.check_checksums()?;
        view.check_entries()?;
        Ok(view)
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::PackCorrupt {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// `len` bytes at `start`; `None` if outside the slice (never, after validation).
    fn slice(&self, start: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(start..end)
    }

    fn check_checksums(&self) -> Result<(), Error> {
        let h = &self.header;
        let checks = [
            (
                ChecksumTarget::Index,
                h.index_offset,
                h.index_len,
                h.index_checksum,
            ),
            (
                ChecksumTarget::Metadata,
                h.meta_offset,
                h.meta_len,
                h.meta_checksum,
            ),
        ];
        for (what, start, len, stored) in checks {
            let bytes = self
                .slice(start, len)
                .ok_or_else(|| self.corrupt(format!("{what} lies outside the file")))?;
            let computed = crc32fast::hash(bytes);
            if computed != stored {
                return Err(Error::PackChecksum {
                    path: self.path.to_path_buf(),
                    what,
                    stored,
                    computed,
                });
            }
        }
        let meta = self.slice(h.meta_offset, h.meta_len).unwrap_or_default();
        std::str::from_utf8(meta)
            .map_err(|e| self.corrupt(format!("metadata is not UTF-8: {e}")))?;
        Ok(())
    }

    /// Every record page-aligned, in order, inside the data region; every box range inside
    /// the box table; raw records exactly `width * height * 3` bytes.
    fn check_entries(&self) -> Result<(), Error> {
        let h = &self.header;
        let mut prev_end = h.data_start;
        for i in 0..h.record_count {
            let m = self
                .meta(i)
                .ok_or_else(|| self.corrupt(format!("index entry {i} lies outside the file")))?;
            let bad = |what: String| self.corrupt(format!("index entry {i}: {what}"));
            if m.offset % PAGE != 0 {
                return Err(bad(format!("offset {} is not page-aligned", m.offset)));
            }
            if m.offset < prev_end || m.end() > h.index_offset {
                return Err(bad(format!(
                    "payload bytes {}..{} lie outside the free data region {prev_end}..{}",
                    m.offset,
                    m.end(),
                    h.index_offset
                )));
            }
            let box_end = u64::from(m.box_start) + u64::from(m.box_count);
            if box_end > h.box_count {
                return Err(bad(format!(
                    "boxes {}..{box_end} lie outside the box table of {} rows",
                    m.box_start, h.box_count
                )));
            }
            let raw_len = u128::from(m.width) * u128::from(m.height) * 3;
            if h.storage == Storage::RawRgb && u128::from(m.length) != raw_len {
                return Err(bad(format!(
                    "{} bytes of raw RGB for {}x{} pixels (expected {raw_len})",
                    m.length, m.width, m.height
                )));
            }
            prev_end = m.end();
        }
        Ok(())
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.header.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The free-form JSON metadata the writer stored (UTF-8, checked at parse time).
    pub fn metadata_json(&self) -> &'a str {
        let h = &self.header;
        let bytes = self.slice(h.meta_offset, h.meta_len).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Index entry `i`, or `None` past the end.
    pub fn meta(&self, i: u64) -> Option<RecordMeta> {
        if i >= self.header.record_count {
            return None;
        }
        let at = self.header.index_offset + i * ENTRY_LEN as u64;
        let at = usize::try_from(at).ok()?;
        block::<ENTRY_LEN>(self.bytes, at).map(RecordMeta::decode)
    }

    /// Record `i` without copying, or `None` past the end. Does not check the payload.
    pub fn record(&self, i: u64) -> Option<RecordRef<'a>> {
        let meta = self.meta(i)?;
        let h = &self.header;
        let box_table = h.index_offset + h.record_count * ENTRY_LEN as u64;
        let boxes = self.slice(
            box_table + u64::from(meta.box_start) * BOX_LEN as u64,
            u64::from(meta.box_count) * BOX_LEN as u64,
        )?;
        Some(RecordRef {
            index: i,
            bytes: self.slice(meta.offset, u64::from(meta.length))?,
            meta,
            boxes,
        })
    }

    /// Recomputes the payload checksum of record `i`.
    ///
    /// A mismatch is [`Error::PackChecksum`] naming the record; loaders skip and count it.
    pub fn verify(&self, i: u64) -> Result<(), Error> {
        let record = self.record(i).ok_or(Error::IndexOutOfRange {
            index: i.into(),
            len: self.len(),
        })?;
        let computed = crc32fast::hash(record.bytes);
        if computed == record.meta.checksum {
            Ok(())
        } else {
            Err(Error::PackChecksum {
                path: self.path.to_path_buf(),
                what: ChecksumTarget::Record(i),
                stored: record.meta.checksum,
                computed,
            })
        }
    }

    /// All records in order.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'a>> {
        let view = *self;
        (0..self.len()).filter_map(move |i| view.record(i))
    }

    /// Every record's label, in order (the sampler's class-balancing input).
    pub fn labels(&self) -> Vec<i32> {
        (0..self.len())
            .filter_map(|i| self.meta(i))
            .map(|m| m.label)
            .collect()
    }

    /// The byte range of the record data in the file (page-aligned at both ends).
    pub fn data_range(&self) -> std::ops::Range<usize> {
        let start = usize::try_from(self.header.data_start).unwrap_or(HEADER_LEN);
        let end = usize::try_from(self.header.index_offset).unwrap_or(start);
        start..end.max(start)
    }
}

/// A read-only memory map of one pack, cheap to clone and share across threads.
///
/// Clones share the map; the file is unmapped when the last clone drops.
#[derive(Debug, Clone)]
pub struct PackReader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    map: Mmap,
    header: Header,
    path: PathBuf,
    /// Bytes of the data region currently `mlock`ed (from its start) by [`PackReader::advise`].
    locked: Mutex<usize>,
}

impl PackReader {
    /// Maps and validates the pack at `path` (see [`PackView::parse`]).
    pub fn open(path: impl AsRef<Path>) -> Result<PackReader, Error> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < HEADER_LEN as u64 {
            // Too short to map usefully (an empty file cannot be mapped at all): read it to
            // get the same error (bad magic or truncated) the parser gives for any slice.
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            PackView::parse(&bytes, path)?;
            return Err(Error::PackTruncated {
                path: path.to_path_buf(),
                reason: format!("the file has {len} bytes, fewer than the header"),
            });
        }
        // SAFETY: the map is read-only and packs are never modified in place: writers build
        // `NAME.partial` and rename it over NAME, which leaves existing maps on the old inode.
        // Truncating a mapped pack by hand would still fault (SIGBUS), as with any mmap reader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = *PackView::parse(&map, path)?.header();
        Ok(PackReader {
            inner: Arc::new(Inner {
                map,
                header,
                path: path.to_path_buf(),
                locked: Mutex::new(0),
            }),
        })
    }

    /// The validated pack, to read records from without copying.
    pub fn view(&self) -> PackView<'_> {
        PackView {
            bytes: &self.inner.map,
            header: self.inner.header,
            path: &self.inner.path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn header(&self) -> &Header {
        &self.inner.header
    }

    pub fn len(&self) -> u64 {
        self.inner.header.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.inner.header.file_len
    }

    /// Record `i` without copying; see [`PackView::record`].
    pub fn record(&self, i: u64) -> Option<RecordRef<'_>> {
        self.view().record(i)
    }

    /// See [`PackView::verify`].
    pub fn verify(&self, i: u64) -> Result<(), Error> {
        self.view().verify(i)
    }

    /// Checks every payload on `threads` threads (0: all cores); returns the bad records in
    /// ascending order.
    pub fn verify_all(&self, threads: usize) -> Result<Vec<u64>, Error> {
        let view = self.view();
        let pool = crate::threads::pool(threads, "pack-verify")?;
        Ok(pool.install(|| {
            (0..view.len())
                .into_par_iter()
                .filter(|&i| view.verify(i).is_err())
                .collect()
        }))
    }

    /// Applies a page-cache policy to the data region; see [`Policy`].
    pub fn advise(&self, policy: Policy) -> Result<AdviseReport, Error> {
        let range = self.view().data_range();
        let mut locked = self
            .inner
            .locked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        hotset::advise(&self.inner.map, range, policy, &mut locked)
            .map_err(|e| Error::io(&self.inner.path, e))
    }

    /// Reads one byte of every page of the file on `threads` threads (0: all cores), so the
    /// whole pack is in the page cache; returns the bytes covered.
    pub fn warm(&self, threads: usize) -> Result<u64, Error> {
        hotset::warm(&self.inner.map, threads)
    }
}
