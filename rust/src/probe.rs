//! Cheap validity check of PNG and JPEG files without decoding them.
//!
//! The dataset scanner runs this over about 2.5M AIHub PNGs, so a probe reads a few bytes at
//! the head (signature, IHDR / marker walk to the first SOF) and a few at the tail (the IEND
//! chunk / the EOI marker), never the whole file. The tail check is what catches the common
//! failure of that dataset: a download or unzip cut short.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::Error;

/// Container format of a probed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    /// The lower-case name Python sees ("png" or "jpeg").
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a successful probe learns about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub file_size: u64,
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const PNG_IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
/// Signature, IHDR length and type, 13 bytes of IHDR data, IHDR CRC.
const PNG_HEADER_LEN: usize = 8 + 8 + 13 + 4;
/// PNG dimensions are at most 2^31 - 1.
const PNG_MAX_DIM: u32 = i32::MAX as u32;
/// Some writers pad JPEG files with a few zero bytes after EOI; more than this is damage.
const JPEG_MAX_TRAILING_ZEROS: usize = 16;
/// One page: a single read at the head covers the PNG header and most JPEG marker walks.
const WINDOW: usize = 4096;

/// Probes one file: format, size in pixels and bytes, and whether it is complete.
///
/// Reads only the head and the tail. OS errors become [`Error::Io`]; broken or truncated
/// files [`Error::CorruptImage`]; anything that is not a PNG or JPEG
/// [`Error::UnsupportedFormat`].
pub fn probe_file(path: &Path) -> Result<ImageInfo, Error> {
    let mut reader = Reader::open(path)?;
    let size = reader.size;
    if size == 0 {
        return Err(Error::corrupt(path, "empty file"));
    }
    let head_len = usize::try_from(size.min(16)).unwrap_or(16);
    let head = reader.read_at(0, head_len)?.to_vec();
    let (format, (width, height)) = match sniff(&head) {
        Sniff::Png => (ImageFormat::Png, probe_png(&mut reader)?),
        Sniff::Jpeg => (ImageFormat::Jpeg, probe_jpeg(&mut reader)?),
        Sniff::Other(name) => {
            return Err(Error::unsupported(
                path,
                format!("{name} is not supported (only PNG and JPEG are)"),
            ))
        }
        Sniff::Unknown => return Err(unknown_format(path, &head)),
    };
    Ok(ImageInfo {
        format,
        width,
        height,
        file_size: size,
    })
}

/// A reusable pool of probe threads; keep one for many calls to [`Prober::probe`].
pub struct Prober {
    pool: rayon::ThreadPool,
}

impl Prober {
    /// `threads == 0` uses every core (or `RAYON_NUM_THREADS`).
    pub fn new(threads: usize) -> Result<Self, Error> {
        Ok(Prober {
            pool: crate::threads::pool(threads, "probe")?,
        })
    }

    /// Probes `paths` in parallel; result `i` belongs to `paths[i]`.
    pub fn probe(&self, paths: &[PathBuf]) -> Vec<Result<ImageInfo, Error>> {
        self.pool
            .install(|| paths.par_iter().map(|p| probe_guarded(p)).collect())
    }
}

/// [`probe_file`], with a panic turned into [`Error::Internal`] for this one path.
fn probe_guarded(path: &Path) -> Result<ImageInfo, Error> {
    catch_panic(path, || probe_file(path))
}

fn catch_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    // The closure only reads the file at `path`; no shared state can be left half-updated.
    Error::catch_panic(|| format!("probing {}", path.display()), f)
}

enum Sniff {
    Png,
    Jpeg,
    Other(&'static str),
    Unknown,
}

/// Names the format from the first (up to 16) bytes.
fn sniff(head: &[u8]) -> Sniff {
    const OTHERS: &[(&[u8], &str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"8BPS", "PSD"),
        (b"qoif", "QOI"),
        (&[0xFF, 0x0A], "JPEG XL"),
        (&[0, 0, 0, 0x0C, b'J', b'X', b'L', b' '], "JPEG XL"),
        (&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' '], "JPEG 2000"),
        (b"BM", "BMP"),
    ];
    if head.starts_with(&PNG_SIGNATURE) {
        return Sniff::Png;
    }
    if head.starts_with(&[0xFF, 0xD8]) {
        return Sniff::Jpeg;
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Sniff::Other("WebP");
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return Sniff::Other("HEIF/AVIF");
    }
    OTHERS
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map_or(Sniff::Unknown, |&(_, name)| Sniff::Other(name))
}

/// Neither signature matched: corrupt if the name or the first bytes claim PNG/JPEG.
fn unknown_format(path: &Path, head: &[u8]) -> Error {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if PNG_SIGNATURE.starts_with(head) {
        Error::corrupt(path, "truncated: file ends inside the PNG signature")
    } else if head.starts_with(b"\x89PNG") || ext.as_deref() == Some("png") {
        Error::corrupt(path, "bad PNG signature")
    } else if matches!(ext.as_deref(), Some("jpg" | "jpeg" | "jpe" | "jfif")) {
        Error::corrupt(path, "bad JPEG signature (does not start with FF D8)")
    } else if head.iter().all(|&b| b == 0) {
        Error::corrupt(path, "file starts with zero bytes (incomplete write?)")
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Error::unsupported(
            path,
            format!("not a PNG or JPEG file (starts with {})", hex.join(" ")),
        )
    }
}

fn probe_png(r: &mut Reader) -> Result<(u32, u32), Error> {
    let path = r.path.clone();
    let size = r.size;
    let head = r
        .read_opt(0, PNG_HEADER_LEN)?
        .ok_or_else(|| Error::corrupt(&path, "truncated: file ends inside the PNG header"))?;
    if &head[12..16] != b"IHDR" {
        return Err(Error::corrupt(&path, "first PNG chunk is not IHDR"));
    }
    let len = be32(&head[8..12]);
    if len != 13 {
        return Err(Error::corrupt(
            &path,
            format!("IHDR length is {len}, expected 13"),
        ));
    }
    if be32(&head[29..33]) != crc32fast::hash(&head[12..29]) {
        return Err(Error::corrupt(&path, "IHDR CRC mismatch"));
    }
    let (width, height) = (be32(&head[16..20]), be32(&head[20..24]));
    if width == 0 || height == 0 {
        return Err(Error::corrupt(
            &path,
            format!("zero width or height in IHDR ({width}x{height})"),
        ));
    }
    if width > PNG_MAX_DIM || height > PNG_MAX_DIM {
        return Err(Error::corrupt(
            &path,
            format!("IHDR size {width}x{height} exceeds the PNG limit of 2^31-1"),
        ));
    }
    let tail_ok = size >= (PNG_HEADER_LEN + PNG_IEND.len()) as u64
        && r.read_at(size - PNG_IEND.len() as u64, PNG_IEND.len())? == PNG_IEND;
    if !tail_ok {
        return Err(Error::corrupt(&path, "truncated: missing IEND trailer"));
    }
    Ok((width, height))
}

fn probe_jpeg(r: &mut Reader) -> Result<(u32, u32), Error> {
    let path = r.path.clone();
    let dims = jpeg_dimensions(r)?;
    let size = r.size;
    let tail_len = size.min((JPEG_MAX_TRAILING_ZEROS + 2) as u64);
    let tail = r.read_at(size - tail_len, tail_len as usize)?;
    let trimmed = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
    if !tail[..trimmed].ends_with(&[0xFF, 0xD9]) {
        return Err(Error::corrupt(
            &path,
            "truncated: missing EOI marker (FF D9) at end of file",
        ));
    }
    Ok(dims)
}

/// Walks the marker segments after SOI up to the first SOFn and reads its size.
///
/// Every step moves forward by at least one byte and stops at the end of the file, so the
/// walk terminates on any input.
fn jpeg_dimensions(r: &mut Reader) -> Result<(u32, u32), Error> {
    let path = r.path.clone();
    let corrupt = |reason: String| Error::corrupt(&path, reason);
    let mut pos: u64 = 2;
    loop {
        let Some(&[first]) = r.read_opt(pos, 1)? else {
            return Err(corrupt(
                "truncated: no SOF marker before end of file".into(),
            ));
        };
        if first != 0xFF {
            return Err(corrupt(format!(
                "expected a marker at offset {pos}, found byte {first:02x}"
            )));
        }
        // Any number of FF fill bytes may precede the marker code.
        let marker = loop {
            pos += 1;
            match r.read_opt(pos, 1)? {
                Some(&[0xFF]) => continue,
                Some(&[code]) => break code,
                _ => return Err(corrupt("truncated: file ends inside a marker".into())),
            }
        };
        pos += 1;
        match marker {
            // Standalone markers carry no length: TEM and RST0..RST7.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => return Err(corrupt(format!("stray FF 00 at offset {}", pos - 2))),
            0xD8 => return Err(corrupt(format!("second SOI at offset {}", pos - 2))),
            0xD9 => return Err(corrupt("EOI before any SOF marker".into())),
            _ => {}
        }
        let seg_len = match r.read_opt(pos, 2)? {
            Some(b) => u64::from(be16(b)),
            None => {
                return Err(corrupt(
                    "truncated: file ends inside a segment length".into(),
                ))
            }
        };
        if seg_len < 2 {
            return Err(corrupt(format!(
                "segment FF {marker:02X} at offset {} has length {seg_len}",
                pos - 2
            )));
        }
        if is_sof(marker) {
            let Some(sof) = r.read_opt(pos, 7).map(|o| o.map(<[u8]>::to_vec))? else {
                return Err(corrupt(
                    "truncated: file ends inside the SOF segment".into(),
                ));
            };
            if seg_len < 8 {
                return Err(corrupt(format!(
                    "SOF segment length {seg_len} is too short"
                )));
            }
            let (height, width) = (u32::from(be16(&sof[3..5])), u32::from(be16(&sof[5..7])));
            if height == 0 {
                return Err(Error::unsupported(
                    &path,
                    "JPEG height defined by a DNL marker is not supported",
                ));
            }
            if width == 0 {
                return Err(corrupt("zero width in SOF".into()));
            }
            return Ok((width, height));
        }
        pos += seg_len;
    }
}

/// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Positional reads through a one-window cache, bounded by the size seen at open time.
struct Reader {
    path: PathBuf,
    file: File,
    size: u64,
    buf: Vec<u8>,
    base: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
            ));
        }
        Ok(Reader {
            path: path.to_path_buf(),
            file,
            size: meta.len(),
            buf: Vec::new(),
            base: 0,
        })
    }

    /// `len` bytes at `offset`; `None` when they reach past the end of the file.
    fn read_opt(&mut self, offset: u64, len: usize) -> Result<Option<&[u8]>, Error> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.size) {
            return Ok(None);
        }
        let cached_end = self.base + self.buf.len() as u64;
        if offset < self.base || offset + len as u64 > cached_end {
            self.fill(offset, len)?;
        }
        let start = usize::try_from(offset - self.base).unwrap_or(usize::MAX);
        Ok(self.buf.get(start..start.saturating_add(len)))
    }

    /// Like [`Reader::read_opt`], for ranges already known to lie inside the file.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<&[u8], Error> {
        let path = self.path.clone();
        self.read_opt(offset, len)?
            .ok_or_else(|| Error::corrupt(&path, "truncated: file shrank while reading"))
    }

    fn fill(&mut self, offset: u64, len: usize) -> Result<(), Error> {
        let want = (self.size - offset).min(len.max(WINDOW) as u64);
        self.buf.resize(usize::try_from(want).unwrap_or(len), 0);
        self.base = offset;
        let res = self
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut self.buf));
        if let Err(e) = res {
            self.buf.clear();
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::corrupt(&self.path, "truncated: file shrank while reading")
            } else {
                Error::io(&self.path, e)
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tempfile::TempDir;

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        let mut f = File::create(&p).expect("test fixture: create file");
        f.write_all(bytes).expect("test fixture: write file");
        p
    }

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().expect("test fixture: PNG header");
            let data: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
            writer
                .write_image_data(&data)
                .expect("test fixture: PNG data");
        }
        out
    }

    fn jpeg_bytes(w: u16, h: u16, progressive: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
        enc.set_progressive(progressive);
        let data: Vec<u8> = (0..u32::from(w) * u32::from(h) * 3)
            .map(|i| (i % 253) as u8)
            .collect();
        enc.encode(&data, w, h, jpeg_encoder::ColorType::Rgb)
            .expect("test fixture: JPEG");
        out
    }

    /// A minimal marker stream: SOI, an APP0, a SOFn, then EOI (no real scan data needed).
    fn jpeg_markers(sof: u8, w: u16, h: u16, extra_before_sof: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        v.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        v.extend_from_slice(extra_before_sof);
        v.extend_from_slice(&[0xFF, sof, 0x00, 0x11, 0x08]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    fn reason(e: &Error) -> &str {
        match e {
            Error::CorruptImage { reason, .. } | Error::UnsupportedFormat { reason, .. } => reason,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn valid_png() {
        let dir = TempDir::new().expect("test");
        let bytes = png_bytes(37, 21);
        let p = write(&dir, "a.png", &bytes);
        let info = probe_file(&p).expect("test");
        assert_eq!(
            info,
            ImageInfo {
                format: ImageFormat::Png,
                width: 37,
                height: 21,
                file_size: bytes.len() as u64
            }
        );
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let dir = TempDir::new().expect("test");
        let bytes = png_bytes(64, 64);
        for cut in [1, 12, 100] {
            let p = write(&dir, "cut.png", &bytes[..bytes.len() - cut]);
            let e = probe_file(&p).unwrap_err();
            assert!(matches!(e, Error::CorruptImage { .. }), "{e}");
            assert_eq!(reason(&e), "truncated: missing IEND trailer");
        }
        let p = write(&dir, "head.png", &bytes[..20]);
        let e = probe_file(&p).unwrap_err();
        assert!(reason(&e).contains("inside the PNG header"), "{e}");
        let p = write(&dir, "sig.png", &bytes[..5]);
        let e = probe_file(&p).unwrap_err();
        assert!(reason(&e).contains("PNG signature"), "{e}");
    }

    #[test]
    fn bad_png_signature_is_corrupt() {
        let dir = TempDir::new().expect("test");
        let mut bytes = png_bytes(8, 8);
        // The classic text-mode transfer damage: CRLF turned into LF.
        bytes.remove(4);
        let p = write(&dir, "crlf.png", &bytes);
        let e = probe_file(&p).unwrap_err();
        assert!(matches!(e, Error::CorruptImage { .. }));
        assert_eq!(reason(&e), "bad PNG signature");
    }

    fn png_with_ihdr(w: u32, h: u32, fix_crc: bool) -> Vec<u8> {
        let mut bytes = png_bytes(4, 4);
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        if fix_crc {
            let crc = crc32fast::hash(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn zero_size_ihdr_is_corrupt() {
        let dir = TempDir::new().expect("test");
        let p = write(&dir, "zero.png", &png_with_ihdr(0, 4, true));
        let e = probe_file(&p).unwrap_err();
        assert!(reason(&e).contains("zero width or height"), "{e}");
    }

    #[test]
    fn ihdr_crc_and_layout_are_checked() {
        let dir = TempDir::new().expect("test");
        let p = write(&dir, "crc.png", &png_with_ihdr(5, 4, false));
        assert_eq!(reason(&probe_file(&p).unwrap_err()), "IHDR CRC mismatch");

        let mut bytes = png_bytes(4, 4);
        bytes[12..16].copy_from_slice(b"tEXt");
        let p = write(&dir, "order.png", &bytes);
        assert!(reason(&probe_file(&p).unwrap_err()).contains("not IHDR"));
    }

    #[test]
    fn jpeg_baseline_and_progressive() {
        let dir = TempDir::new().expect("test");
        for progressive in [false, true] {
            let bytes = jpeg_bytes(33, 17, progressive);
            let sof = if progressive { 0xC2 } else { 0xC0 };
            assert!(
                bytes.windows(2).any(|m| m == [0xFF, sof]),
                "encoder wrote no SOF{sof:X}"
            );
            let p = write(&dir, "a.jpg", &bytes);
            let info = probe_file(&p).expect("test");
            assert_eq!(info.format, ImageFormat::Jpeg);
            assert_eq!((info.width, info.height), (33, 17));
            assert_eq!(info.file_size, bytes.len() as u64);
        }
        // Hand-built streams for SOF0, SOF2 and the arithmetic/lossless flavours.
        for sof in [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA] {
            let p = write(&dir, "m.jpg", &jpeg_markers(sof, 976, 1280, &[]));
            let info = probe_file(&p).expect("test");
            assert_eq!((info.width, info.height), (976, 1280), "SOF {sof:02X}");
        }
    }

    #[test]
    fn jpeg_skips_dht_dac_and_standalone_markers() {
        let dir = TempDir::new().expect("test");
        // DHT (C4) and DAC (CC) sit in the SOF range but are not frames; RST0 and TEM have
        // no length field; a big APP1 is skipped by seeking past the first window.
        let mut extra = vec![0xFF, 0xC4, 0x00, 0x04, 0xAA, 0xBB];
        extra.extend_from_slice(&[0xFF, 0xCC, 0x00, 0x04, 0x01, 0x02]);
        extra.extend_from_slice(&[0xFF, 0xD0, 0xFF, 0x01]);
        extra.extend_from_slice(&[0xFF, 0xE1, 0xFF, 0xF0]);
        extra.extend(std::iter::repeat_n(0x5Au8, 0xFFF0 - 2));
        let p = write(&dir, "m.jpg", &jpeg_markers(0xC2, 640, 480, &extra));
        let info = probe_file(&p).expect("test");
        assert_eq!((info.width, info.height), (640, 480));
    }

    #[test]
    fn jpeg_fill_bytes_and_trailing_padding() {
        let dir = TempDir::new().expect("test");
        let mut bytes = jpeg_markers(0xC0, 100, 50, &[0xFF, 0xFF, 0xFF]);
        let p = write(&dir, "fill.jpg", &bytes);
        assert_eq!(probe_file(&p).expect("test").width, 100);

        bytes.extend_from_slice(&[0, 0, 0, 0]);
        let p = write(&dir, "pad.jpg", &bytes);
        assert_eq!(probe_file(&p).expect("test").height, 50);

        bytes.extend_from_slice(&[0; 64]);
        let p = write(&dir, "toomuch.jpg", &bytes);
        assert!(reason(&probe_file(&p).unwrap_err()).contains("missing EOI"));
    }

    #[test]
    fn jpeg_missing_eoi_is_corrupt() {
        let dir = TempDir::new().expect("test");
        let bytes = jpeg_bytes(32, 32, false);
        let p = write(&dir, "cut.jpg", &bytes[..bytes.len() - 40]);
        let e = probe_file(&p).unwrap_err();
        assert!(matches!(e, Error::CorruptImage { .. }));
        assert_eq!(
            reason(&e),
            "truncated: missing EOI marker (FF D9) at end of file"
        );
    }

    #[test]
    fn jpeg_broken_marker_walks_fail_cleanly() {
        let dir = TempDir::new().expect("test");
        let cases: &[(&[u8], &str)] = &[
            (&[0xFF, 0xD8], "no SOF"),
            (&[0xFF, 0xD8, 0xFF, 0xFF, 0xFF], "inside a marker"),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0x00], "segment length"),
            (
                &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0xFF, 0xD9],
                "has length 1",
            ),
            (&[0xFF, 0xD8, 0x12, 0x34, 0xFF, 0xD9], "expected a marker"),
            (&[0xFF, 0xD8, 0xFF, 0xD9], "EOI before"),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0x7F, 0xFF, 0xFF, 0xD9], "no SOF"),
            (
                &[0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00],
                "inside the SOF",
            ),
        ];
        for (i, (bytes, want)) in cases.iter().enumerate() {
            let p = write(&dir, &format!("b{i}.jpg"), bytes);
            let e = probe_file(&p).unwrap_err();
            assert!(matches!(e, Error::CorruptImage { .. }), "case {i}: {e}");
            assert!(reason(&e).contains(want), "case {i}: {e}");
        }
        let p = write(&dir, "dnl.jpg", &jpeg_markers(0xC0, 10, 0, &[]));
        assert!(matches!(
            probe_file(&p).unwrap_err(),
            Error::UnsupportedFormat { .. }
        ));
    }

    #[test]
    fn missing_file_and_directory_are_io_errors() {
        let dir = TempDir::new().expect("test");
        let p = dir.path().join("nope.png");
        match probe_file(&p).unwrap_err() {
            Error::Io { path, source } => {
                assert_eq!(path, p);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(matches!(
            probe_file(dir.path()).unwrap_err(),
            Error::Io { .. }
        ));
    }

    #[test]
    fn non_images_are_unsupported_or_corrupt() {
        let dir = TempDir::new().expect("test");
        let gif = write(&dir, "a.png", b"GIF89a\x01\x00\x01\x00rest");
        let e = probe_file(&gif).unwrap_err();
        assert!(matches!(e, Error::UnsupportedFormat { .. }));
        assert!(reason(&e).starts_with("GIF"), "{e}");

        let html = write(&dir, "page.txt", b"<!DOCTYPE html><html></html>");
        let e = probe_file(&html).unwrap_err();
        assert!(matches!(e, Error::UnsupportedFormat { .. }), "{e}");
        assert!(reason(&e).contains("3c 21 44"), "{e}");

        // A .png that is not even a PNG is a broken dataset file, not a foreign format.
        let fake = write(&dir, "fake.png", b"<!DOCTYPE html><html></html>");
        assert_eq!(reason(&probe_file(&fake).unwrap_err()), "bad PNG signature");
        let zeros = write(&dir, "zeros.bin", &[0u8; 100]);
        assert!(reason(&probe_file(&zeros).unwrap_err()).contains("zero bytes"));
        let empty = write(&dir, "empty.png", b"");
        assert_eq!(reason(&probe_file(&empty).unwrap_err()), "empty file");
    }

    #[test]
    fn a_prober_keeps_order_and_mixes_results() -> Result<(), Error> {
        let dir = TempDir::new().expect("test");
        let png = write(&dir, "a.png", &png_bytes(3, 2));
        let jpg = write(&dir, "b.jpg", &jpeg_bytes(5, 4, false));
        let bad = write(&dir, "c.png", &png_bytes(6, 6)[..50]);
        let missing = dir.path().join("missing.png");
        let paths: Vec<PathBuf> = (0..300)
            .map(|i| [&png, &jpg, &bad, &missing][i % 4].clone())
            .collect();
        for threads in [0, 1, 3] {
            let results = Prober::new(threads)?.probe(&paths);
            assert_eq!(results.len(), paths.len());
            for (i, r) in results.iter().enumerate() {
                match (i % 4, r) {
                    (0, Ok(info)) => assert_eq!((info.width, info.height), (3, 2)),
                    (1, Ok(info)) => assert_eq!((info.width, info.height), (5, 4)),
                    (2, Err(Error::CorruptImage { .. })) | (3, Err(Error::Io { .. })) => {}
                    (k, other) => panic!("index {i} (kind {k}): {other:?}"),
                }
            }
        }
        assert!(Prober::new(2)?.probe(&[]).is_empty());
        Ok(())
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<(), Error> = catch_panic(Path::new("x.png"), || panic!("bug"));
        match r {
            Err(Error::Internal { reason }) => {
                assert!(reason.contains("x.png") && reason.contains("bug"))
            }
            other => panic!("{other:?}"),
        }
    }
}
