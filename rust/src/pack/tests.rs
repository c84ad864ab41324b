//! Tests of the pack format, writer, reader, journal and hotset on real files.

use std::error::Error as StdError;
use std::fs;
use std::path::{Path, PathBuf};

use super::fuzzing::{exercise, reseal};
use super::*;
use crate::error::Error;

type TestResult = Result<(), Box<dyn StdError>>;

const HASH: &str = "0123456789abcdef";

/// Deterministic xorshift bytes, so payloads differ and the tests need no `rand`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A record with a size that exercises padding: some under a page, some spanning several.
fn sample(i: u64) -> (Vec<u8>, Vec<BoxLabel>) {
    let len = [1, 100, 4095, 4096, 4097, 9000, 40_000][i as usize % 7];
    let boxes = (0..i % 3)
        .map(|k| BoxLabel {
            x: i as f32 + 0.5,
            y: k as f32 * 2.25,
            w: 30.0 + k as f32,
            h: 40.75,
            label: (i * 10 + k) as i32,
        })
        .collect();
    (noise(i + 1, len), boxes)
}

fn options() -> WriterOptions {
    let mut o = WriterOptions::new(Storage::Jpeg, HASH);
    o.metadata_json = r#"{"short_side": 480, "quality": 90}"#.to_owned();
    o.created_unix = Some(1_700_000_000);
    o.checkpoint_every = 3;
    o.durable = false;
    o
}

fn add_samples(w: &mut PackWriter, range: std::ops::Range<u64>) -> Result<(), Error> {
    for i in range {
        let (payload, boxes) = sample(i);
        let index = w.add(&RecordInput {
            payload: &payload,
            width: 480 + i as u32,
            height: 640,
            label: if i % 5 == 4 { -1 } else { i as i32 },
            boxes: &boxes,
            source_id: 1000 + i,
        })?;
        assert_eq!(index, i);
    }
    Ok(())
}

fn write_pack(dir: &Path, name: &str, n: u64) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..n)?;
    w.finish()?;
    Ok(path)
}

fn parse_err(bytes: &[u8]) -> Error {
    match PackView::parse(bytes, Path::new("x.pack")) {
        Ok(_) => panic!("a damaged pack was accepted"),
        Err(e) => e,
    }
}

#[test]
fn round_trip_keeps_payloads_metadata_and_boxes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 20)?;
    let reader = PackReader::open(&path)?;
    let h = reader.header();
    assert_eq!(reader.len(), 20);
    assert_eq!(h.version, VERSION);
    assert_eq!(h.storage, Storage::Jpeg);
    assert_eq!(h.class_hash_str(), HASH);
    assert_eq!(h.created_unix, 1_700_000_000);
    assert_eq!(h.file_len, fs::metadata(&path)?.len());
    let view = reader.view();
    assert_eq!(view.metadata_json(), options().metadata_json);
    for i in 0..20 {
        let (payload, boxes) = sample(i);
        let r = reader.record(i).ok_or("missing record")?;
        assert_eq!(r.bytes, payload.as_slice());
        assert_eq!(r.meta.offset % PAGE, 0, "record {i} is not page-aligned");
        assert_eq!((r.meta.width, r.meta.height), (480 + i as u32, 640));
        assert_eq!(r.meta.source_id, 1000 + i);
        assert_eq!(r.boxes().collect::<Vec<_>>(), boxes);
        assert_eq!(r.boxes().len(), boxes.len());
        reader.verify(i)?;
    }
    assert_eq!(view.labels()[4], -1);
    assert_eq!(view.labels()[3], 3);
    assert!(reader.record(20).is_none());
    assert!(matches!(
        reader.verify(20),
        Err(Error::IndexOutOfRange { index: 20, len: 20 })
    ));
    assert_eq!(view.iter().count(), 20);
    assert_eq!(reader.verify_all(2)?, Vec::<u64>::new());
    assert!(!path.with_extension("pack.partial").exists());
    assert!(!path.with_extension("pack.journal").exists());
    Ok(())
}

#[test]
fn an_empty_pack_is_valid() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "empty.pack", 0)?;
    let reader = PackReader::open(&path)?;
    assert!(reader.is_empty());
    assert_eq!(reader.verify_all(0)?, Vec::<u64>::new());
    assert_eq!(reader.warm(1)?, reader.size_bytes());
    Ok(())
}

#[test]
fn raw_rgb_records_must_match_their_size() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("raw.pack");
    let mut w = PackWriter::open(&path, WriterOptions::new(Storage::RawRgb, HASH))?;
    let pixels = noise(3, 4 * 5 * 3);
    fn rec(payload: &[u8]) -> RecordInput<'_> {
        RecordInput {
            payload,
            width: 4,
            height: 5,
            label: 1,
            boxes: &[],
            source_id: 0,
        }
    }
    w.add(&rec(&pixels))?;
    let err = w
        .add(&rec(&pixels[1..]))
        .err()
        .ok_or("accepted a short raw record")?;
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    w.finish()?;
    let reader = PackReader::open(&path)?;
    assert_eq!(reader.header().storage, Storage::RawRgb);
    assert_eq!(reader.len(), 1);
    Ok(())
}

#[test]
fn bad_inputs_are_refused_before_writing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    for hash in ["", "0123", "0123456789abcdeg", "0123456789abcdef0"] {
        let err = PackWriter::open(&path, WriterOptions::new(Storage::Jpeg, hash)).err();
        assert!(matches!(err, Some(Error::InvalidArgument { .. })), "{hash}");
    }
    let mut w = PackWriter::open(&path, options())?;
    let nan = [BoxLabel {
        x: f32::NAN,
        y: 0.0,
        w: 1.0,
        h: 1.0,
        label: 0,
    }];
    let mut rec = RecordInput {
        payload: b"jpeg",
        width: 0,
        height: 4,
        label: 0,
        boxes: &[],
        source_id: 0,
    };
    assert!(w.add(&rec).is_err());
    rec.width = 4;
    rec.boxes = &nan;
    assert!(w.add(&rec).is_err());
    assert_eq!(w.len(), 0);
    Ok(())
}

#[test]
fn a_flipped_payload_byte_fails_only_that_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 10)?;
    let offset = PackReader::open(&path)?
        .view()
        .meta(6)
        .ok_or("no meta")?
        .offset;
    let mut bytes = fs::read(&path)?;
    bytes[offset as usize + 3] ^= 0x40;
    fs::write(&path, &bytes)?;

    let reader = PackReader::open(&path)?;
    match reader.verify(6) {
        Err(Error::PackChecksum {
            what: ChecksumTarget::Record(6),
            ..
        }) => {}
        other => panic!("expected a record 6 checksum error, got {other:?}"),
    }
    assert!(reader
        .verify(6)
        .err()
        .ok_or("")?
        .to_string()
        .contains("record 6"));
    reader.verify(5)?;
    assert_eq!(reader.verify_all(0)?, vec![6]);
    Ok(())
}

#[test]
fn damaged_header_index_or_metadata_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 5)?;
    let good = fs::read(&path)?;
    let header = Header::parse(&good, &path)?;

    let mut b = good.clone();
    b[30] ^= 1; // record count, without resealing
    let e = parse_err(&b);
    assert!(
        matches!(
            e,
            Error::PackChecksum {
                what: ChecksumTarget::Header,
                ..
            }
        ),
        "{e}"
    );

    let mut b = good.clone();
    b[header.index_offset as usize + 20] ^= 1;
    let e = parse_err(&b);
    assert!(
        matches!(
            e,
            Error::PackChecksum {
                what: ChecksumTarget::Index,
                ..
            }
        ),
        "{e}"
    );

    let mut b = good.clone();
    b[header.meta_offset as usize] ^= 1;
    let e = parse_err(&b);
    assert!(
        matches!(
            e,
            Error::PackChecksum {
                what: ChecksumTarget::Metadata,
                ..
            }
        ),
        "{e}"
    );

    let mut b = good.clone();
    b.push(0);
    let e = parse_err(&b);
    assert!(
        e.to_string().contains("unexpected bytes after the end"),
        "{e}"
    );
    Ok(())
}

#[test]
fn bad_magic_and_future_versions_say_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 2)?;
    let good = fs::read(&path)?;

    let e = parse_err(b"\x89PNG\r\n\x1a\n and more");
    assert!(matches!(e, Error::PackBadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a PillSnap pack"), "{e}");

    let mut b = good.clone();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    let e = parse_err(&b); // not resealed: the version is checked before the checksum
    assert!(matches!(e, Error::PackBadVersion { found: 2, .. }), "{e}");
    assert!(e.to_string().contains("reads version 1"), "{e}");

    let mut b = good.clone();
    b[16..20].copy_from_slice(&7u32.to_le_bytes());
    reseal(&mut b);
    let e = parse_err(&b);
    assert!(e.to_string().contains("unknown storage kind 7"), "{e}");

    // The reader's open path (mmap, or read for tiny files) gives the same errors.
    let foreign = dir.path().join("foreign.pack");
    fs::write(&foreign, b"hello")?;
    let e = PackReader::open(&foreign)
        .err()
        .ok_or("opened a text file")?;
    assert!(matches!(e, Error::PackBadMagic { .. }), "{e}");
    fs::write(&foreign, b"")?;
    let e = PackReader::open(&foreign)
        .err()
        .ok_or("opened an empty file")?;
    assert!(matches!(e, Error::PackTruncated { .. }), "{e}");
    Ok(())
}

#[test]
fn every_cut_point_is_a_truncation_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 8)?;
    let good = fs::read(&path)?;
    let header = Header::parse(&good, &path)?;
    for cut in 0..good.len() {
        let e = parse_err(&good[..cut]);
        assert!(
            matches!(e, Error::PackTruncated { .. }),
            "cut at {cut}: {e}"
        );
        let text = e.to_string();
        if cut as u64 >= header.index_offset && (cut as u64) < header.meta_offset {
            assert!(text.contains("cut short in the index"), "{text}");
        } else if cut >= HEADER_LEN && (cut as u64) < header.index_offset {
            assert!(text.contains("cut short in the record data"), "{text}");
        }
    }
    // And through the file path, cut in the data and in the index.
    for cut in [HEADER_LEN as u64 + 100, header.index_offset + 10] {
        fs::write(&path, &good[..cut as usize])?;
        let e = PackReader::open(&path).err().ok_or("opened a cut file")?;
        assert!(matches!(e, Error::PackTruncated { .. }), "{e}");
    }
    Ok(())
}

/// Rewrites index entry `i` of `bytes` with `edit` applied, and reseals.
fn edit_entry(bytes: &mut [u8], i: usize, edit: impl FnOnce(&mut RecordMeta)) -> TestResult {
    let header = Header::parse(bytes, Path::new("x"))?;
    let at = header.index_offset as usize + i * ENTRY_LEN;
    let raw: &[u8; ENTRY_LEN] = bytes[at..at + ENTRY_LEN].try_into()?;
    let mut m = RecordMeta::decode(raw);
    edit(&mut m);
    let mut enc = [0u8; ENTRY_LEN];
    m.encode(&mut enc);
    bytes[at..at + ENTRY_LEN].copy_from_slice(&enc);
    reseal(bytes);
    Ok(())
}

#[test]
fn out_of_bounds_index_entries_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 6)?;
    let good = fs::read(&path)?;
    let header = Header::parse(&good, &path)?;
    type Edit = Box<dyn Fn(&mut RecordMeta)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "outside the free data region",
            Box::new(|m| m.length = u32::MAX),
        ),
        ("not page-aligned", Box::new(|m| m.offset += 1)),
        ("outside the free data region", Box::new(|m| m.offset = 0)),
        (
            "outside the free data region",
            Box::new(move |m| m.offset = header.index_offset),
        ),
        ("outside the box table", Box::new(|m| m.box_count = 1000)),
        (
            "outside the box table",
            Box::new(|m| m.box_start = u32::MAX),
        ),
    ];
    for (want, edit) in cases {
        let mut b = good.clone();
        edit_entry(&mut b, 2, edit)?;
        let e = parse_err(&b);
        assert!(matches!(e, Error::PackCorrupt { .. }), "{e}");
        assert!(e.to_string().contains("index entry 2"), "{e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    // Overlap with the previous record.
    let mut b = good.clone();
    let prev = PackView::parse(&good, &path)?;
    let prev_offset = prev.meta(1).ok_or("no meta")?.offset;
    edit_entry(&mut b, 2, |m| m.offset = prev_offset)?;
    assert!(matches!(parse_err(&b), Error::PackCorrupt { .. }));
    Ok(())
}

/// Writes a pack in two runs with a kill in between; returns the journal record count seen.
fn interrupted_then_resumed(dir: &Path, kill_after: u64, total: u64) -> Result<u64, Error> {
    let path = dir.join("b.pack");
    if path.exists() {
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    }
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..kill_after)?;
    w.abandon();
    assert!(
        !path.exists(),
        "an unfinished pack appeared at its final name"
    );

    let mut o = options();
    o.resume = true;
    let mut w = PackWriter::open(&path, o)?;
    let done = w.len();
    add_samples(&mut w, done..total)?;
    let summary = w.finish()?;
    assert_eq!(summary.resumed_records, done);
    assert_eq!(summary.records, total);
    Ok(done)
}

#[test]
fn resume_after_a_kill_equals_one_uninterrupted_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let one_go = fs::read(write_pack(dir.path(), "a.pack", 20)?)?;
    for kill_after in [0, 1, 2, 3, 7, 11, 20] {
        let done = interrupted_then_resumed(dir.path(), kill_after, 20)?;
        // checkpoint_every = 3: the journal holds every complete group of three.
        assert_eq!(done, kill_after / 3 * 3, "kill after {kill_after}");
        assert!(
            fs::read(dir.path().join("b.pack"))? == one_go,
            "kill after {kill_after}"
        );
    }
    Ok(())
}

#[test]
fn a_dropped_writer_checkpoints_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..5)?;
    drop(w);
    let mut o = options();
    o.resume = true;
    let w = PackWriter::open(&path, o.clone())?;
    assert_eq!(w.len(), 5);
    drop(w);
    // Without resume, leftovers are discarded.
    let w = PackWriter::open(&path, options())?;
    assert_eq!(w.len(), 0);
    Ok(())
}

#[test]
fn resume_drops_damaged_or_missing_tail_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let partial = dir.path().join("a.pack.partial");
    let journal = dir.path().join("a.pack.journal");
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..9)?;
    drop(w);
    let mut o = options();
    o.resume = true;

    // A flipped byte in record 7's payload: 7 and 8 are redone.
    let reader_meta = |i: u64| -> Result<RecordMeta, Box<dyn StdError>> {
        let (_, replay) = journal::Journal::replay(&journal, &config_of(&options())?)?;
        Ok(replay.entries[i as usize])
    };
    let m7 = reader_meta(7)?;
    let mut data = fs::read(&partial)?;
    data[m7.offset as usize] ^= 1;
    fs::write(&partial, &data)?;
    let w = PackWriter::open(&path, o.clone())?;
    assert_eq!((w.len(), w.dropped_on_resume()), (7, 2));
    drop(w);

    // The data file cut inside record 5 (the journal still lists 5 and 6).
    let m5 = reader_meta(5)?;
    let f = fs::OpenOptions::new().write(true).open(&partial)?;
    f.set_len(m5.offset + 10)?;
    drop(f);
    let mut w = PackWriter::open(&path, o.clone())?;
    assert_eq!((w.len(), w.dropped_on_resume()), (5, 2));
    add_samples(&mut w, 5..9)?;
    w.finish()?;
    let one_go = fs::read(write_pack(dir.path(), "ref.pack", 9)?)?;
    assert!(fs::read(&path)? == one_go);
    Ok(())
}

fn config_of(o: &WriterOptions) -> Result<journal::JournalConfig, Error> {
    Ok(journal::JournalConfig {
        storage: o.storage,
        class_hash: parse_class_hash(&o.class_hash)?,
        meta_len: o.metadata_json.len() as u64,
        meta_crc: crc32fast::hash(o.metadata_json.as_bytes()),
    })
}

#[test]
fn a_torn_journal_tail_is_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let journal = dir.path().join("a.pack.journal");
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..6)?;
    drop(w);
    let mut j = fs::read(&journal)?;
    let len = j.len();
    j[len - 5] ^= 0xff; // the last record slot's checksum region
    j.extend_from_slice(&[7u8; 30]); // and half a slot of garbage
    fs::write(&journal, &j)?;
    let mut o = options();
    o.resume = true;
    let w = PackWriter::open(&path, o)?;
    assert_eq!(w.len(), 5);
    Ok(())
}

#[test]
fn a_journal_of_another_run_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..4)?;
    drop(w);
    let mut o = options();
    o.resume = true;
    o.class_hash = "fedcba9876543210".to_owned();
    let e = PackWriter::open(&path, o.clone())
        .err()
        .ok_or("resumed a foreign run")?;
    assert!(matches!(e, Error::PackJournal { .. }), "{e}");
    assert!(e.to_string().contains("class hash"), "{e}");

    o.class_hash = HASH.to_owned();
    o.metadata_json = "{}".to_owned();
    let e = PackWriter::open(&path, o.clone())
        .err()
        .ok_or("resumed other metadata")?;
    assert!(e.to_string().contains("metadata_json"), "{e}");

    fs::write(
        dir.path().join("a.pack.journal"),
        b"not a journal at all, really not at all, no, definitely not",
    )?;
    let e = PackWriter::open(&path, options_resume())
        .err()
        .ok_or("used a foreign journal")?;
    assert!(matches!(e, Error::PackJournal { .. }), "{e}");
    Ok(())
}

fn options_resume() -> WriterOptions {
    let mut o = options();
    o.resume = true;
    o
}

#[test]
fn a_second_writer_on_the_same_pack_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let _first = PackWriter::open(&path, options())?;
    let e = PackWriter::open(&path, options_resume())
        .err()
        .ok_or("two writers")?;
    assert!(e.to_string().contains("another PackWriter"), "{e}");
    Ok(())
}

#[test]
fn a_finished_pack_is_replaced_only_when_the_new_one_finishes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 3)?;
    let old = fs::read(&path)?;
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..5)?;
    assert_eq!(fs::read(&path)?, old);
    w.finish()?;
    assert_eq!(PackReader::open(&path)?.len(), 5);
    Ok(())
}

#[test]
fn readers_share_one_map_across_threads() -> TestResult {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<PackReader>();
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 14)?;
    let reader = PackReader::open(&path)?;
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let r = reader.clone();
            std::thread::spawn(move || {
                (0..r.len())
                    .filter(|i| i % 4 == t)
                    .all(|i| r.verify(i).is_ok() && r.record(i).is_some())
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().map_err(|_| "reader thread panicked")?);
    }
    Ok(())
}

#[test]
fn advise_and_warm_report_what_they_did() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write_pack(dir.path(), "a.pack", 10)?;
    let reader = PackReader::open(&path)?;
    let data_len = reader.header().data_len();

    let r = reader.advise(Policy::Hotset { lock_bytes: 0 })?;
    assert_eq!(
        (r.policy, r.locked_bytes, r.lock_error.clone()),
        ("hotset", 0, None)
    );
    assert_eq!(r.willneed, cfg!(unix));

    // 10000 bytes round down to 2 pages; a budget past the data region is capped.
    let r = reader.advise(Policy::Hotset { lock_bytes: 10_000 })?;
    assert_eq!(r.lock_requested, 8192);
    assert!(r.locked_bytes == 8192 || r.lock_error.is_some(), "{r:?}");
    let r = reader.advise(Policy::Hotset {
        lock_bytes: u64::MAX,
    })?;
    assert_eq!(r.lock_requested, data_len);
    if let Some(why) = &r.lock_error {
        assert!(why.contains("RLIMIT_MEMLOCK"), "{why}");
        assert_eq!(r.locked_bytes, 0);
    }

    let r = reader.advise(Policy::None)?;
    assert_eq!((r.policy, r.willneed, r.locked_bytes), ("none", false, 0));
    assert_eq!(reader.warm(2)?, fs::metadata(&path)?.len());
    assert!(Policy::parse("hot", 0).is_err());
    Ok(())
}

#[test]
fn random_mutations_never_panic() -> TestResult {
    // The same body as fuzz/fuzz_targets/pack_open.rs, over seeded mutations (bytes flipped,
    // then checksums repaired half the time so the index checks are reached).
    let dir = tempfile::tempdir()?;
    let good = fs::read(write_pack(dir.path(), "a.pack", 6)?)?;
    let header = Header::parse(&good, Path::new("a"))?;
    let tail_start = header.index_offset as usize;
    let mut accepted = 0;
    for round in 0..3000u64 {
        let rnd = noise(round + 17, 32);
        let mut b = good.clone();
        for k in 0..1 + rnd[0] as usize % 4 {
            // Mostly the header and the index, where the structure is.
            let span = if rnd[1].is_multiple_of(2) {
                HEADER_LEN.min(128)
            } else {
                b.len() - tail_start
            };
            let base = if rnd[1].is_multiple_of(2) {
                0
            } else {
                tail_start
            };
            let at = base
                + (u32::from_le_bytes([rnd[2 + k], rnd[6 + k], rnd[10 + k], 0]) as usize % span);
            b[at] = rnd[20 + k];
        }
        if rnd[3].is_multiple_of(2) {
            reseal(&mut b);
        }
        if rnd[4].is_multiple_of(5) {
            b.truncate(rnd[5] as usize * b.len() / 256);
        }
        if exercise(&b) > 0 {
            accepted += 1;
        }
    }
    assert!(
        accepted > 0,
        "no mutation was accepted: the index checks were never reached"
    );
    Ok(())
}

#[test]
fn a_kill_inside_finish_resumes_from_the_journal() -> TestResult {
    // The state a kill between writing the header and the rename leaves: a complete pack
    // still named .partial, and the journal.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a.pack");
    let partial = dir.path().join("a.pack.partial");
    let journal = dir.path().join("a.pack.journal");
    let mut w = PackWriter::open(&path, options())?;
    add_samples(&mut w, 0..10)?;
    drop(w);
    let saved_journal = fs::read(&journal)?;
    PackWriter::open(&path, options_resume())?.finish()?;
    let complete = fs::read(&path)?;
    fs::rename(&path, &partial)?;
    fs::write(&journal, saved_journal)?;

    let mut w = PackWriter::open(&path, options_resume())?;
    assert_eq!((w.len(), w.dropped_on_resume()), (10, 0));
    // The index and header were cut off: the .partial no longer looks like a pack.
    assert!(matches!(
        PackView::parse(&fs::read(&partial)?, &partial),
        Err(Error::PackBadMagic { .. })
    ));
    add_samples(&mut w, 10..12)?;
    w.finish()?;
    assert!(fs::read(&path)? == fs::read(write_pack(dir.path(), "ref.pack", 12)?)?);
    assert!(complete.len() < fs::read(&path)?.len());
    Ok(())
}
