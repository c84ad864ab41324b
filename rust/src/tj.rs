//! The crate's one `unsafe` area: a small safe wrapper over the TurboJPEG 3 C API
//! (`turbojpeg-sys`, libjpeg-turbo 3.1 built statically from the crate's bundled source).
//!
//! Invariants the wrapper keeps, so that callers cannot cause undefined behaviour:
//! - a [`Handle`] owns exactly one live `tjhandle` (non-null, destroyed once in `Drop`);
//! - every buffer handed to C is a live Rust slice whose length is passed with it;
//! - before `tj3Decompress8` writes into `dst`, [`Handle::decompress_rgb`] recomputes from
//!   the handle's current header, scaling factor and cropping region how many bytes
//!   libjpeg-turbo will write, and refuses a `dst` that is shorter;
//! - libjpeg-turbo reports errors with `setjmp`/`longjmp` *inside* C (no Rust frame is ever
//!   jumped over) and returns -1, which becomes a [`TjError`] here.
//!
//! A TurboJPEG instance may be used from any thread but not from two at once, hence `Send`
//! and not `Sync`.

use std::ffi::{c_int, c_void, CStr};
use std::ptr::NonNull;

use turbojpeg_sys as sys;

/// What a failed TurboJPEG call reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TjError {
    pub message: String,
    /// True for a libjpeg warning promoted to an error (TJPARAM_STOPONWARNING).
    pub warning: bool,
}

pub(crate) type TjResult<T> = Result<T, TjError>;

/// Header fields as TurboJPEG reports them after `tj3DecompressHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub width: i32,
    pub height: i32,
    /// A `TJSAMP_*` value (-1: unknown).
    pub subsamp: i32,
    /// A `TJCS_*` value.
    pub colorspace: i32,
    pub precision: i32,
    pub lossless: bool,
    pub progressive: bool,
}

/// A DCT scaling factor `num / denom` as listed by `tj3GetScalingFactors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingFactor {
    pub num: u32,
    pub denom: u32,
}

impl ScalingFactor {
    /// No scaling.
    pub const ONE: ScalingFactor = ScalingFactor { num: 1, denom: 1 };

    /// `TJSCALED`: the scaled size of a dimension, rounded up as libjpeg-turbo does.
    pub fn scale(self, dim: u32) -> u32 {
        let scaled = (u64::from(dim) * u64::from(self.num)).div_ceil(u64::from(self.denom));
        u32::try_from(scaled).unwrap_or(u32::MAX)
    }

    /// The factor as a number (0.125..=1 for the factors the decoder uses).
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.denom)
    }
}

/// The scaling factors libjpeg-turbo supports, read once from the library.
pub(crate) fn scaling_factors() -> Vec<ScalingFactor> {
    let mut count: c_int = 0;
    // SAFETY: tj3GetScalingFactors returns a pointer to a static array of `count` entries
    // (or null on failure), valid for the life of the program and never written.
    let list = unsafe { sys::tj3GetScalingFactors(&mut count) };
    if list.is_null() || count <= 0 {
        return vec![ScalingFactor::ONE];
    }
    let len = usize::try_from(count).unwrap_or(0);
    // SAFETY: as above, `list` points to `len` initialised `tjscalingfactor`s.
    let raw = unsafe { std::slice::from_raw_parts(list, len) };
    raw.iter()
        .filter_map(|f| {
            Some(ScalingFactor {
                num: u32::try_from(f.num).ok()?,
                denom: u32::try_from(f.denom).ok().filter(|d| *d > 0)?,
            })
        })
        .collect()
}

/// `tjMCUWidth` from turbojpeg.h, indexed by `TJSAMP_*` (444, 422, 420, gray, 440, 411,
/// 441). The header defines it `static`, so the library exports no symbol for it.
const MCU_WIDTH: [u32; 7] = [8, 16, 16, 8, 8, 32, 8];

/// The iMCU width in unscaled pixels for a `TJSAMP_*` value, if known.
pub(crate) fn mcu_width(subsamp: i32) -> Option<u32> {
    MCU_WIDTH.get(usize::try_from(subsamp).ok()?).copied()
}

/// A cropping region in scaled pixels; all zero means "no cropping".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One owned TurboJPEG instance.
pub(crate) struct Handle {
    ptr: NonNull<c_void>,
    init: sys::TJINIT,
    /// Parameters set through [`Handle::set`], replayed by [`Handle::reset`].
    params: Vec<(sys::TJPARAM, i32)>,
    /// The last successfully read header (decompressors only).
    header: Option<RawHeader>,
    scaling: ScalingFactor,
    region: Region,
}

// SAFETY: a tjhandle has no thread affinity; it only must not be used concurrently, which
// `&mut self` on every call and the absence of `Sync` guarantee.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from tj3Init and is destroyed exactly once, here.
        unsafe { sys::tj3Destroy(self.ptr.as_ptr()) }
    }
}

fn to_size_t(len: usize) -> TjResult<sys::size_t> {
    sys::size_t::try_from(len).map_err(|_| TjError {
        message: format!("buffer of {len} bytes is too large for TurboJPEG"),
        warning: false,
    })
}

fn to_c_int(value: usize, what: &str) -> TjResult<c_int> {
    c_int::try_from(value).map_err(|_| TjError {
        message: format!("{what} ({value}) is too large for TurboJPEG"),
        warning: false,
    })
}

impl Handle {
    fn new(init: sys::TJINIT) -> TjResult<Self> {
        // SAFETY: tj3Init has no preconditions; it returns null on failure.
        let raw = unsafe { sys::tj3Init(init as c_int) };
        let ptr = NonNull::new(raw).ok_or_else(|| TjError {
            message: "tj3Init failed (out of memory?)".to_owned(),
            warning: false,
        })?;
        Ok(Handle {
            ptr,
            init,
            params: Vec::new(),
            header: None,
            scaling: ScalingFactor::ONE,
            region: Region::default(),
        })
    }

    pub fn decompressor() -> TjResult<Self> {
        Self::new(sys::TJINIT_TJINIT_DECOMPRESS)
    }

    pub fn compressor() -> TjResult<Self> {
        Self::new(sys::TJINIT_TJINIT_COMPRESS)
    }

    /// The error of the last failed call on this handle.
    fn last_error(&self) -> TjError {
        // SAFETY: the handle is live; tj3GetErrorStr returns a NUL-terminated string owned
        // by the instance (or a static one), valid until the next call on this handle.
        let message = unsafe {
            let ptr = sys::tj3GetErrorStr(self.ptr.as_ptr());
            if ptr.is_null() {
                "unknown TurboJPEG error".to_owned()
            } else {
                CStr::from_ptr(ptr)
                    .to_string_lossy()
                    .trim()
                    .replace('\n', " ")
            }
        };
        // SAFETY: the handle is live.
        let code = unsafe { sys::tj3GetErrorCode(self.ptr.as_ptr()) };
        TjError {
            message,
            warning: code == sys::TJERR_TJERR_WARNING as c_int,
        }
    }

    fn check(&self, status: c_int) -> TjResult<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.last_error())
        }
    }

    pub fn set(&mut self, param: sys::TJPARAM, value: i32) -> TjResult<()> {
        // SAFETY: the handle is live; tj3Set validates `param` and `value`.
        let status = unsafe { sys::tj3Set(self.ptr.as_ptr(), param as c_int, value) };
        self.check(status)?;
        match self.params.iter_mut().find(|(p, _)| *p == param) {
            Some(entry) => entry.1 = value,
            None => self.params.push((param, value)),
        }
        Ok(())
    }

    /// Replaces the instance with a fresh one carrying the same parameters.
    ///
    /// tj3DecompressHeader returns from a libjpeg error without aborting the decompressor,
    /// leaving half-read marker state that poisons the next header ("Bogus Huffman table
    /// definition" on a valid file); a fresh instance is the documented clean state.
    fn reset(&mut self) {
        let Ok(mut fresh) = Handle::new(self.init) else {
            return; // Out of memory: keep the old instance; the next call reports errors.
        };
        for &(param, value) in &self.params {
            // Values were accepted once already.
            let _ = fresh.set(param, value);
        }
        std::mem::swap(self, &mut fresh);
    }

    fn get(&self, param: sys::TJPARAM) -> i32 {
        // SAFETY: the handle is live; tj3Get returns -1 for an unknown parameter.
        unsafe { sys::tj3Get(self.ptr.as_ptr(), param as c_int) }
    }

    /// Parses the JPEG header of `data`; later calls decode this same `data`.
    pub fn read_header(&mut self, data: &[u8]) -> TjResult<RawHeader> {
        self.header = None;
        let len = to_size_t(data.len())?;
        // SAFETY: `data` is a live slice of `len` bytes that C only reads.
        let status = unsafe { sys::tj3DecompressHeader(self.ptr.as_ptr(), data.as_ptr(), len) };
        if let Err(err) = self.check(status) {
            self.reset();
            return Err(err);
        }
        let header = RawHeader {
            width: self.get(sys::TJPARAM_TJPARAM_JPEGWIDTH),
            height: self.get(sys::TJPARAM_TJPARAM_JPEGHEIGHT),
            subsamp: self.get(sys::TJPARAM_TJPARAM_SUBSAMP),
            colorspace: self.get(sys::TJPARAM_TJPARAM_COLORSPACE),
            precision: self.get(sys::TJPARAM_TJPARAM_PRECISION),
            lossless: self.get(sys::TJPARAM_TJPARAM_LOSSLESS) == 1,
            progressive: self.get(sys::TJPARAM_TJPARAM_PROGRESSIVE) == 1,
        };
        self.header = Some(header);
        Ok(header)
    }

    pub fn set_scaling(&mut self, factor: ScalingFactor) -> TjResult<()> {
        let raw = sys::tjscalingfactor {
            num: to_c_int(factor.num as usize, "scaling numerator")?,
            denom: to_c_int(factor.denom as usize, "scaling denominator")?,
        };
        // SAFETY: the handle is live; the factor is checked against the supported list.
        let status = unsafe { sys::tj3SetScalingFactor(self.ptr.as_ptr(), raw) };
        self.check(status)?;
        self.scaling = factor;
        Ok(())
    }

    /// Sets the cropping region (scaled pixels) for the next decode; zero: whole image.
    /// Must follow [`Handle::read_header`] and [`Handle::set_scaling`].
    pub fn set_region(&mut self, region: Region) -> TjResult<()> {
        let raw = sys::tjregion {
            x: to_c_int(region.x as usize, "crop x")?,
            y: to_c_int(region.y as usize, "crop y")?,
            w: to_c_int(region.w as usize, "crop width")?,
            h: to_c_int(region.h as usize, "crop height")?,
        };
        // SAFETY: the handle is live; libjpeg-turbo validates the region against the header
        // and scaling factor it holds.
        let status = unsafe { sys::tj3SetCroppingRegion(self.ptr.as_ptr(), raw) };
        self.check(status)?;
        self.region = region;
        Ok(())
    }

    /// The (width, height) in pixels that the next decode of the current header writes.
    pub fn output_size(&self) -> TjResult<(u32, u32)> {
        let header = self.header.ok_or_else(|| TjError {
            message: "no JPEG header has been read".to_owned(),
            warning: false,
        })?;
        let width = self.scaling.scale(u32::try_from(header.width).unwrap_or(0));
        let height = self
            .scaling
            .scale(u32::try_from(header.height).unwrap_or(0));
        let r = self.region;
        if r == Region::default() {
            Ok((width, height))
        } else {
            // tj3SetCroppingRegion accepted it, so it lies inside the scaled image.
            Ok((r.w, r.h))
        }
    }

    /// Decodes `data` (the bytes last given to [`Handle::read_header`]) as packed RGB into
    /// `dst`, applying the current scaling factor and cropping region.
    pub fn decompress_rgb(&mut self, data: &[u8], dst: &mut [u8]) -> TjResult<(u32, u32)> {
        let (width, height) = self.output_size()?;
        let pitch = (width as usize).saturating_mul(3);
        let needed = pitch.saturating_mul(height as usize);
        if dst.len() < needed || width == 0 || height == 0 {
            return Err(TjError {
                message: format!("output buffer of {} bytes, {needed} needed", dst.len()),
                warning: false,
            });
        }
        let pitch_c = to_c_int(pitch, "row pitch")?;
        let len = to_size_t(data.len())?;
        // SAFETY: `data` is read-only input of the given length; `dst` holds at least
        // pitch * height bytes, which is exactly what libjpeg-turbo writes for this header,
        // scaling factor and cropping region (rows of `pitch` bytes, `height` rows).
        let status = unsafe {
            sys::tj3Decompress8(
                self.ptr.as_ptr(),
                data.as_ptr(),
                len,
                dst.as_mut_ptr(),
                pitch_c,
                sys::TJPF_TJPF_RGB as c_int,
            )
        };
        self.check(status)?;
        Ok((width, height))
    }

    /// Compresses packed RGB `rgb` (width x height) with the handle's quality/subsampling
    /// parameters into `out`, returning the number of JPEG bytes written.
    pub fn compress_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut Vec<u8>,
    ) -> TjResult<usize> {
        self.compress(rgb, width, height, false, out)
    }

    /// As [`Handle::compress_rgb`] for packed CMYK (4 bytes a pixel) when `cmyk`.
    pub fn compress(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        cmyk: bool,
        out: &mut Vec<u8>,
    ) -> TjResult<usize> {
        let (pixel_format, pixel_size) = if cmyk {
            (sys::TJPF_TJPF_CMYK, 4)
        } else {
            (sys::TJPF_TJPF_RGB, 3)
        };
        let pitch = (width as usize).saturating_mul(pixel_size);
        if width == 0 || height == 0 || rgb.len() < pitch.saturating_mul(height as usize) {
            return Err(TjError {
                message: format!("RGB buffer of {} bytes for {width}x{height}", rgb.len()),
                warning: false,
            });
        }
        let (w, h) = (
            to_c_int(width as usize, "width")?,
            to_c_int(height as usize, "height")?,
        );
        // TJSAMP_UNKNOWN asks for the bound of four full-resolution components (CMYK).
        let subsamp = if cmyk {
            sys::TJSAMP_TJSAMP_UNKNOWN
        } else {
            self.get(sys::TJPARAM_TJPARAM_SUBSAMP)
        };
        // SAFETY: pure function of its arguments; returns 0 for invalid ones.
        let bound = unsafe { sys::tj3JPEGBufSize(w, h, subsamp) } as usize;
        if bound == 0 {
            return Err(self.last_error());
        }
        out.clear();
        out.resize(bound, 0);
        // With TJPARAM_NOREALLOC, TurboJPEG writes into our buffer and fails rather than
        // growing it; tj3JPEGBufSize is its documented worst case.
        self.set(sys::TJPARAM_TJPARAM_NOREALLOC, 1)?;
        let mut buf_ptr = out.as_mut_ptr();
        let mut size = bound as sys::size_t;
        // SAFETY: `rgb` holds height rows of `pitch` bytes; `out` holds `bound` writable
        // bytes and NOREALLOC forbids TurboJPEG to free or replace it.
        let status = unsafe {
            sys::tj3Compress8(
                self.ptr.as_ptr(),
                rgb.as_ptr(),
                w,
                to_c_int(pitch, "row pitch")?,
                h,
                pixel_format as c_int,
                &mut buf_ptr,
                &mut size,
            )
        };
        self.check(status)?;
        let written = usize::try_from(size).unwrap_or(usize::MAX).min(bound);
        out.truncate(written);
        Ok(written)
    }
}
