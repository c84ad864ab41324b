//! Pack write and read throughput on this machine (numbers in docs/pack-format.md).
//!
//! ```text
//! cargo run --release --example pack_bench -- [DIR] [RECORDS] [THREADS]
//! ```
//!
//! Writes RECORDS (default 10,000) incompressible payloads of 30-50 KB (mean 40 KB, the size
//! of a 480-pixel JPEG at q90) with the default options (durable checkpoints every 256
//! records), then opens the pack and reads it: sequential zero-copy reads with checksum,
//! `verify_all` on THREADS threads (default: all cores), random-order reads, and `warm`.
//! Reads run from the page cache; on Linux the pack is also evicted first
//! (`posix_fadvise(DONTNEED)`) to time one cold sequential pass.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use _native::pack::{PackReader, PackWriter, RecordInput, Storage, WriterOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let records: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(0), |a| a.parse())?;
    let path = dir.join("pack_bench.pack");

    // One buffer of noise; each record is a different window of it, 30-50 KB long.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..(1 << 20) + 50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let len_of = |i: u64| 30_000 + (i * 7919 % 20_001) as usize;

    let mut options = WriterOptions::new(Storage::Jpeg, "0123456789abcdef");
    options.metadata_json = r#"{"bench": true}"#.to_owned();
    let t = Instant::now();
    let mut w = PackWriter::open(&path, options)?;
    for i in 0..records {
        let start = (i * 104_729 % (1 << 20)) as usize;
        w.add(&RecordInput {
            payload: &noise[start..start + len_of(i)],
            width: 480,
            height: 629,
            label: (i % 4500) as i32,
            boxes: &[],
            source_id: i,
        })?;
    }
    let summary = w.finish()?;
    let write_s = t.elapsed().as_secs_f64();
    let mb = summary.payload_bytes as f64 / 1e6;
    println!(
        "write   {records} records, {mb:.0} MB payload, file {:.0} MB: {write_s:.2} s, \
         {:.0} MB/s, {:.0} records/s (fsync every 256 records and at finish)",
        summary.file_bytes as f64 / 1e6,
        mb / write_s,
        records as f64 / write_s
    );
    println!(
        "padding {} bytes = {:.0} bytes/record = {:.2} % of the payload",
        summary.padding_bytes,
        summary.padding_bytes as f64 / records as f64,
        100.0 * summary.padding_bytes as f64 / summary.payload_bytes as f64
    );

    let t = Instant::now();
    let reader = PackReader::open(&path)?;
    println!(
        "open    {:.2} ms (header, index checksum, bounds of every entry)",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(reader);

    // Pages mapped by a live reader cannot be evicted: each cold pass gets its own map.
    if evict(&path) {
        let cold = PackReader::open(&path)?;
        let (s, n) = timed(|| sequential(&cold));
        println!(
            "cold    sequential read + crc, 1 thread: {:.0} MB/s ({n} ok)",
            mb / s
        );
    }
    let reader = PackReader::open(&path)?;
    if evict(&path) {
        let (s, bytes) = timed(|| reader.warm(threads).unwrap_or(0));
        println!(
            "cold    warm({threads}), every page from disk: {:.0} MB/s",
            bytes as f64 / 1e6 / s
        );
    }
    // A second process (another DDP rank) maps pages that are in the page cache but not yet
    // in its page tables: a fresh map shows that cost (minor faults).
    let fresh = PackReader::open(&path)?;
    let (s, n) = timed(|| sequential(&fresh));
    println!(
        "cached  fresh map, sequential read + crc, 1 thread: {:.0} MB/s, {:.0} records/s ({n} ok)",
        mb / s,
        records as f64 / s
    );
    let (s, n) = timed(|| sequential(&fresh));
    println!(
        "hot     same map again: {:.0} MB/s, {:.0} records/s ({n} ok)",
        mb / s,
        records as f64 / s
    );
    let fresh = PackReader::open(&path)?;
    let (s, bad) = timed(|| {
        fresh
            .verify_all(threads)
            .map(|b| b.len())
            .unwrap_or(usize::MAX)
    });
    println!(
        "cached  fresh map, verify_all({threads}): {:.0} MB/s ({bad} bad)",
        mb / s
    );
    let (s, n) = timed(|| {
        let view = reader.view();
        (0..records)
            .map(|i| i * 7_368_787 % records)
            .filter_map(|i| view.record(i))
            .map(|r| usize::from(r.bytes[r.bytes.len() / 2]))
            .sum::<usize>()
    });
    println!(
        "hot     random-order zero-copy record() + one byte: {:.3} us/record ({n})",
        s * 1e6 / records as f64
    );
    std::fs::remove_file(&path)?;
    Ok(())
}

fn sequential(reader: &PackReader) -> usize {
    let view = reader.view();
    view.iter().filter(|r| view.verify(r.index).is_ok()).count()
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

/// Drops the file's pages from the page cache, where the OS allows it.
#[cfg(target_os = "linux")]
fn evict(path: &std::path::Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: advisory call on a descriptor we own.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn evict(_path: &std::path::Path) -> bool {
    false
}
