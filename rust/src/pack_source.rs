//! The loader's sample source over a pack file: record bytes -> checksum -> augmented sample.
//!
//! JPEG records go through the crop-before-decode path ([`SampleDecoder`]); raw RGB records
//! are cropped and resized directly. Every record's checksum is verified as it is read (a
//! few microseconds at CRC speed), so a damaged page becomes a skipped, counted sample and
//! never garbage pixels in a batch.

use std::sync::Arc;

use crate::augment::{self, TrainAugment};
use crate::error::Error;
use crate::jpeg::{CropRect, Window};
use crate::pack::{PackReader, Storage};
use crate::prefetch::SampleSource;
use crate::resize::Layout;
use crate::sample::SampleDecoder;

/// Train (RandomResizedCrop + flip, seeded per sample) or eval (resize + centre crop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Train { seed: u64, augment: TrainAugment },
    Eval,
}

pub struct PackSource {
    reader: Arc<PackReader>,
    size: u32,
    mode: Mode,
    layout: Layout,
}

impl PackSource {
    pub fn new(reader: Arc<PackReader>, size: u32, mode: Mode, layout: Layout) -> Self {
        PackSource {
            reader,
            size,
            mode,
            layout,
        }
    }

    /// Bytes of one output sample (`size * size * 3`).
    pub fn sample_bytes(&self) -> usize {
        self.size as usize * self.size as usize * 3
    }

    pub fn reader(&self) -> &PackReader {
        &self.reader
    }

    fn load_raw(
        &self,
        worker: &mut SampleDecoder,
        pixels: &[u8],
        w: u32,
        h: u32,
        crop: Crop,
        dst: &mut [u8],
    ) -> Result<(), Error> {
        if pixels.len() != w as usize * h as usize * 3 {
            return Err(Error::invalid(
                "raw record size does not match its width and height",
            ));
        }
        let (rect, flip) = match crop {
            Crop::Train(p) => (p.crop, p.flip),
            Crop::Eval(rect) => (rect, false),
        };
        let window = Window::whole(pixels, w, h, rect);
        worker
            .resizer
            .resize_window(&window, self.size, self.size, flip, self.layout, dst)
    }
}

enum Crop {
    Train(augment::TrainParams),
    Eval(CropRect),
}

impl SampleSource for PackSource {
    type Worker = SampleDecoder;

    fn len(&self) -> usize {
        usize::try_from(self.reader.len()).unwrap_or(usize::MAX)
    }

    fn new_worker(&self) -> Result<SampleDecoder, Error> {
        SampleDecoder::new()
    }

    fn load(
        &self,
        worker: &mut SampleDecoder,
        index: usize,
        epoch: u64,
        dst: &mut [u8],
    ) -> Result<i64, Error> {
        let i = index as u64;
        self.reader.verify(i)?;
        let record = self.reader.record(i).ok_or(Error::IndexOutOfRange {
            index: i.into(),
            len: self.reader.len(),
        })?;
        let meta = record.meta;
        match (self.reader.header().storage, self.mode) {
            (Storage::Jpeg, Mode::Train { seed, augment }) => {
                worker.load_train_sample_with(
                    record.bytes,
                    self.size,
                    (seed, epoch, i),
                    &augment,
                    self.layout,
                    dst,
                )?;
            }
            (Storage::Jpeg, Mode::Eval) => {
                worker.load_eval_sample(record.bytes, self.size, self.layout, dst)?;
            }
            (Storage::RawRgb, mode) => {
                let crop = match mode {
                    Mode::Train { seed, augment } => {
                        Crop::Train(augment.params(meta.width, meta.height, seed, epoch, i))
                    }
                    Mode::Eval => {
                        Crop::Eval(augment::eval_crop(meta.width, meta.height, self.size))
                    }
                };
                self.load_raw(worker, record.bytes, meta.width, meta.height, crop, dst)?;
            }
        }
        Ok(i64::from(meta.label))
    }
}
