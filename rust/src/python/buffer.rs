//! Writing into a caller's buffer (numpy array, bytearray, tensor memory) without the
//! buffer protocol.
//!
//! The extension targets the stable ABI of Python 3.10 (`abi3-py310`), which has no buffer
//! protocol (`PyObject_GetBuffer` joined the limited API in 3.11, so pyo3's `PyBuffer` is
//! compiled out). `ctypes.c_char.from_buffer(out)` does the same job through Python: it takes
//! a writable, C-contiguous export of any buffer-protocol object, keeps it for its own
//! lifetime, and `ctypes.addressof` yields the address. The `memoryview` checks before it
//! only give clearer messages.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;

/// The item formats of a uint8 buffer (`memoryview.format`).
pub(super) const UINT8: &[&str] = &["B", "b", "c"];
/// The item formats of an int64 buffer.
pub(super) const INT64: &[&str] = &["q", "l"];

/// A caller's writable, C-contiguous buffer of exactly the bytes a call writes, exported
/// for as long as this value lives.
pub(super) struct OutBuffer<'py> {
    /// Holds the buffer export: the memory stays allocated and unresizable while it lives.
    export: Bound<'py, PyAny>,
    addr: usize,
    len: usize,
}

impl<'py> OutBuffer<'py> {
    /// A uint8 buffer of exactly `needed` bytes.
    pub(super) fn get(out: &Bound<'py, PyAny>, needed: usize) -> Result<Self, PyErr> {
        Self::get_typed(out, needed, UINT8, "uint8")
    }

    /// A buffer of exactly `needed` bytes whose item format is one of `formats` (`what`
    /// names them in the message).
    pub(super) fn get_typed(
        out: &Bound<'py, PyAny>,
        needed: usize,
        formats: &[&str],
        what: &str,
    ) -> PyResult<Self> {
        let py = out.py();
        let view = memoryview(out).map_err(|_| {
            Error::invalid("out must support the buffer protocol (e.g. a numpy uint8 array)")
        })?;
        let format: String = view.getattr("format")?.extract()?;
        let readonly: bool = view.getattr("readonly")?.extract()?;
        let contiguous: bool = view.getattr("c_contiguous")?.extract()?;
        let len: usize = view.getattr("nbytes")?.extract()?;
        view.call_method0("release")?;
        if !formats.contains(&format.as_str()) {
            return Err(
                Error::invalid(format!("out must hold {what}, got format {format:?}")).into(),
            );
        }
        if readonly {
            return Err(Error::invalid("out is read-only; pass a writable buffer").into());
        }
        if !contiguous {
            return Err(Error::invalid("out must be C-contiguous").into());
        }
        if len != needed {
            return Err(Error::invalid(format!("out has {len} bytes, {needed} needed")).into());
        }
        let ctypes = py.import("ctypes")?;
        let export = ctypes
            .getattr("c_char")?
            .call_method1("from_buffer", (out,))?;
        let addr: usize = ctypes.getattr("addressof")?.call1((&export,))?.extract()?;
        Ok(OutBuffer { export, addr, len })
    }

    /// The buffer's bytes, for use while the GIL is released.
    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `addr..addr + len` is the writable, C-contiguous memory of the export that
        // `self.export` holds, so it stays allocated and cannot be resized until `self` is
        // dropped, which the borrow of the returned slice prevents while it is alive. The
        // length was checked against what the caller will write. As with numpy's own
        // GIL-free loops, Python code touching the same array from another thread during the
        // call races with it; that is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }
}

/// The item format of a float32 buffer.
pub(super) const FLOAT32: &[&str] = &["f"];

impl OutBuffer<'_> {
    /// The buffer as float32 values (it was obtained with [`FLOAT32`]).
    pub(super) fn as_mut_f32(&mut self) -> Result<&mut [f32], Error> {
        let bytes = self.as_mut_slice();
        // SAFETY: every bit pattern is a valid f32, and align_to_mut only puts into the
        // middle slice what is aligned for f32; a misaligned buffer is refused below.
        let (head, floats, tail) = unsafe { bytes.align_to_mut::<f32>() };
        if !head.is_empty() || !tail.is_empty() {
            return Err(Error::invalid("out is not aligned for float32"));
        }
        Ok(floats)
    }
}

/// A buffer export held for a loader's lifetime (see [`OutBuffer`]); the loader writes
/// through `addr` from its own threads.
pub(super) struct HeldBuffer {
    _export: Py<PyAny>,
    pub(super) addr: usize,
}

impl HeldBuffer {
    pub(super) fn hold(
        out: &Bound<'_, PyAny>,
        needed: usize,
        formats: &[&str],
        what: &str,
    ) -> PyResult<Self> {
        let buffer = OutBuffer::get_typed(out, needed, formats, what)?;
        Ok(HeldBuffer {
            addr: buffer.addr,
            _export: buffer.export.unbind(),
        })
    }
}

/// A copy of any buffer-protocol object's bytes, for inputs the engine only reads: one copy
/// under the GIL keeps this simple and safe with the Python 3.10 stable ABI.
pub(super) fn copy_bytes<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = memoryview(obj)
        .and_then(|view| view.call_method0("tobytes"))
        .map_err(|_| Error::invalid(format!("{what} must support the buffer protocol")))?;
    Ok(bytes.cast_into::<PyBytes>()?)
}

fn memoryview<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    obj.py()
        .import("builtins")?
        .getattr("memoryview")?
        .call1((obj,))
}
