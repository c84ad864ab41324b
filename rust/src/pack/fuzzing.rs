//! Shared by the fuzz target (`fuzz/fuzz_targets/pack_open.rs`) and the mutation test.

use std::path::Path;

use super::{PackView, HEADER_CRC_AT, HEADER_LEN};

/// Parses `bytes` as a pack and reads everything in it; must never panic.
/// Returns a count so that the reads cannot be optimised away.
pub fn exercise(bytes: &[u8]) -> usize {
    let Ok(view) = PackView::parse(bytes, Path::new("fuzz.pack")) else {
        return 0;
    };
    let mut n = 0;
    for r in view.iter() {
        n += r.boxes().count() + usize::from(view.verify(r.index).is_ok());
    }
    n + view.labels().len() + view.metadata_json().len()
}

/// Recomputes the index, metadata and header checksums of an edited pack (where the
/// header's offsets allow), so a mutation reaches the checks behind the checksums.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let le64 = |b: &[u8], at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        usize::try_from(u64::from_le_bytes(a)).unwrap_or(usize::MAX)
    };
    let (index, index_len) = (le64(bytes, 48), le64(bytes, 56));
    let (meta, meta_len) = (le64(bytes, 64), le64(bytes, 72));
    if let Some(b) = bytes.get(index..index.saturating_add(index_len)) {
        let crc = crc32fast::hash(b);
        bytes[96..100].copy_from_slice(&crc.to_le_bytes());
    }
    if let Some(b) = bytes.get(meta..meta.saturating_add(meta_len)) {
        let crc = crc32fast::hash(b);
        bytes[100..104].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes[..HEADER_CRC_AT]);
    bytes[HEADER_CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}
