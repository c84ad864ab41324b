"""The pack file (hotset store) as the packer and the loaders use it (needs the extension built).

Real files in tmp_path: round trips, page alignment, damage detection, crash-safe resume
(including a writer process killed with SIGKILL), concurrent readers and the page-cache policy.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pillsnap import _native
from pillsnap.errors import DataError, NativeIOError, PackError

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parents[1] / "python"
CLASS_HASH = "0123456789abcdef"
METADATA = '{"short_side": 480, "quality": 90, "manifest": "abc"}'
PAGE = 4096
EPOCH = "1700000000"


def record_args(i: int) -> tuple[bytes, int, int, int, list[tuple[float, ...]], int]:
    """Deterministic record ``i`` (also imported by the writer subprocess below).

    Payload sizes from 32 bytes to about 10 KB cross page boundaries in every way; every
    seventh record is a combination image with several boxes and no single label.
    """
    payload = hashlib.sha256(str(i).encode()).digest() * (1 + (i * 37) % 300)
    combo = i % 7 == 3
    boxes = [(10.5 + k, 20.25, 100.0, 80.5 + k, 100 + k) for k in range(3 if combo else 1)]
    return payload, 480, 629 + i % 3, -1 if combo else i % 11, boxes, 5000 + i


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((48 + i, 40), 30 + i).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write(path: Path, n: int, **kwargs: object) -> dict:
    with _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA, **kwargs) as w:
        for i in range(n):
            w.add(*record_args(i))
        summary = w.finish()
    return summary


@pytest.fixture(autouse=True)
def _reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fixes the header's creation time so that two runs can be compared byte for byte.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def test_round_trip_keeps_payloads_boxes_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "train.pack"
    jpegs = [_jpeg(i) for i in range(3)]
    with _native.PackWriter(path, "jpeg", class_hash=CLASS_HASH, metadata_json=METADATA) as w:
        assert w.add(jpegs[0], 48, 40, 7) == 0
        combo = [(1.5, 2.5, 30.0, 40.0, 3), (50.0, 60.25, 20.0, 10.0, 9)]
        assert w.add(jpegs[1], 49, 40, -1, combo, source_id=12) == 1
        assert w.add_many([(jpegs[2], 50, 40, 2, [(0.0, 0.0, 50.0, 40.0, 2)], 13)]) == 2
        assert len(w) == 3
    assert path.exists() and not Path(f"{path}.partial").exists()
    assert not Path(f"{path}.journal").exists()

    r = _native.PackReader(path)
    assert len(r) == 3
    header = r.header()
    assert header["version"] == 1
    assert header["storage"] == "jpeg"
    assert header["class_hash"] == CLASS_HASH
    assert header["metadata"] == {"short_side": 480, "quality": 90, "manifest": "abc"}
    assert header["created_unix"] == int(EPOCH)
    assert header["records"] == 3 and header["boxes"] == 3
    assert r.size_bytes == path.stat().st_size == header["file_bytes"]

    assert [r.record(i) for i in range(3)] == jpegs
    with Image.open(io.BytesIO(r.record(1))) as img:
        assert img.size == (49, 40)
    m = r.meta(1)
    assert (m["width"], m["height"], m["label"], m["source_id"]) == (49, 40, -1, 12)
    assert m["boxes"] == combo
    assert r.meta(0)["boxes"] == [] and r.meta(0)["source_id"] == 0
    assert r.meta(-1)["boxes"] == [(0.0, 0.0, 50.0, 40.0, 2)]
    assert r.labels() == [7, -1, 2]
    # The checksum is CRC-32 as zlib computes it, so Python tools can check records too.
    assert m["checksum"] == zlib.crc32(jpegs[1])
    with pytest.raises(IndexError):
        r.record(3)
    with pytest.raises(IndexError):
        r.meta(-4)


def test_every_record_starts_on_a_page(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    summary = _write(path, 40)
    r = _native.PackReader(path)
    raw = path.read_bytes()
    for i in range(len(r)):
        m = r.meta(i)
        assert m["offset"] % PAGE == 0, f"record {i} at {m['offset']}"
        assert raw[m["offset"] : m["offset"] + m["length"]] == record_args(i)[0]
    assert summary["records"] == 40
    payload = sum(len(record_args(i)[0]) for i in range(40))
    assert summary["payload_bytes"] == payload
    assert summary["padding_bytes"] == r.header()["index_offset"] - PAGE - payload
    assert raw[:8] == b"PSNPACK\0"


def test_truncated_files_are_pack_errors_naming_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 12)
    good = path.read_bytes()
    index_offset = _native.PackReader(path).header()["index_offset"]

    path.write_bytes(good[: index_offset + 30])
    with pytest.raises(PackError, match=r"truncated pack.*cut short in the index"):
        _native.PackReader(path)

    path.write_bytes(good[: PAGE + 5000])
    with pytest.raises(PackError, match=r"truncated pack.*cut short in the record data"):
        _native.PackReader(path)

    path.write_bytes(good[:100])
    with pytest.raises(PackError, match="fewer than the 4096-byte header"):
        _native.PackReader(path)
    assert issubclass(PackError, DataError)


def test_a_flipped_byte_fails_only_its_record(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 10)
    offset = _native.PackReader(path).meta(4)["offset"]
    raw = bytearray(path.read_bytes())
    raw[offset + 17] ^= 0x01
    path.write_bytes(bytes(raw))

    r = _native.PackReader(path)  # Opening does not read payloads: still fine.
    assert r.verify(4) is False
    assert all(r.verify(i) for i in range(10) if i != 4)
    assert r.verify_all() == [4]
    assert r.verify_all(threads=1) == [4]
    assert r.record(4) != record_args(4)[0]


def test_a_damaged_index_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 5)
    index_offset = _native.PackReader(path).header()["index_offset"]
    raw = bytearray(path.read_bytes())
    raw[index_offset + 3] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(PackError, match="index fails its checksum"):
        _native.PackReader(path)


def test_bad_magic_and_future_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 3)
    good = path.read_bytes()

    png = tmp_path / "photo.pack"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5000))
    with pytest.raises(PackError, match="not a PillSnap pack"):
        _native.PackReader(png)

    future = tmp_path / "future.pack"
    future.write_bytes(good[:8] + (2).to_bytes(4, "little") + good[12:])
    supported = r"version 2 is not supported \(this build reads version 1\)"
    with pytest.raises(PackError, match=supported):
        _native.PackReader(future)

    with pytest.raises(NativeIOError):
        _native.PackReader(tmp_path / "missing.pack")


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    with pytest.raises(ValueError, match="hex digits"):
        _native.PackWriter(path, class_hash="not-a-hash")
    with pytest.raises(ValueError, match='valid: "jpeg", "raw_rgb"'):
        _native.PackWriter(path, "png", class_hash=CLASS_HASH)
    with pytest.raises(ValueError, match="JSON object"):
        _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json="[1, 2]")

    w = _native.PackWriter(path, "raw_rgb", class_hash=CLASS_HASH)
    with pytest.raises(ValueError, match="expected 12"):
        w.add(b"\x00" * 11, 2, 2, 0)
    with pytest.raises(ValueError, match="4 to 6 items"):
        w.add_many([(b"\x00" * 12, 2, 2)])
    with pytest.raises(TypeError, match="each record is a tuple"):
        w.add_many([[b"\x00" * 12, 2, 2, 0]])
    with pytest.raises(ValueError, match="record 1 of the batch"):
        w.add_many([(b"\x00" * 12, 2, 2, 0), (b"\x00" * 12, 2, 2, 0, [(0, 0, -1, 1, 0)])])
    assert len(w) == 1  # the good record before the bad one was written
    assert w.finish()["records"] == 1
    with pytest.raises(ValueError, match="already finished"):
        w.add(b"\x00" * 12, 2, 2, 0)
    assert _native.PackReader(path).header()["storage"] == "raw_rgb"


def test_a_second_writer_on_the_same_pack_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    first = _native.PackWriter(path, class_hash=CLASS_HASH)
    with pytest.raises(NativeIOError, match="another PackWriter"):
        _native.PackWriter(path, class_hash=CLASS_HASH, resume=True)
    first.close()


def _resume_and_finish(path: Path, n: int) -> int:
    """Reopens an interrupted pack, adds the rest and returns how many were already done."""
    with _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA, resume=True) as w:
        done = len(w)
        assert w.resumed == done
        w.add_many([record_args(i) for i in range(done, n)])
    return done


def test_an_exception_in_the_with_block_keeps_the_journal(tmp_path: Path) -> None:
    reference = tmp_path / "ref.pack"
    _write(reference, 50)
    path = tmp_path / "a.pack"
    with (
        pytest.raises(RuntimeError),
        _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA) as w,
    ):
        for i in range(30):
            w.add(*record_args(i))
        raise RuntimeError("preprocessing crashed")
    assert not path.exists()
    assert Path(f"{path}.journal").exists() and Path(f"{path}.partial").exists()

    assert _resume_and_finish(path, 50) == 30  # closing checkpoints every record
    assert path.read_bytes() == reference.read_bytes()


def test_a_deleted_writer_resumes_and_resume_false_starts_over(tmp_path: Path) -> None:
    reference = tmp_path / "ref.pack"
    _write(reference, 20)
    path = tmp_path / "a.pack"
    w = _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA)
    w.add_many([record_args(i) for i in range(8)])
    del w
    assert _resume_and_finish(path, 20) == 8
    assert path.read_bytes() == reference.read_bytes()

    w = _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA)
    w.add(*record_args(0))
    w.close()
    fresh = _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA)
    assert len(fresh) == 0
    fresh.close()
    # The finished pack at the final name was never touched by the unfinished runs.
    assert path.read_bytes() == reference.read_bytes()


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    w = _native.PackWriter(path, class_hash=CLASS_HASH, metadata_json=METADATA)
    w.add(*record_args(0))
    w.close()
    with pytest.raises(PackError, match=r"journal.*class hash"):
        _native.PackWriter(path, class_hash="ffffffffffffffff", metadata_json=METADATA, resume=True)


WRITER_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_native_pack import CLASS_HASH, METADATA, record_args
from pillsnap._native import PackWriter
w = PackWriter(sys.argv[1], class_hash=CLASS_HASH, metadata_json=METADATA, resume=True,
               checkpoint_every=4)
for i in range(len(w), int(sys.argv[3])):
    w.add(*record_args(i))
    print(i, flush=True)
    time.sleep(0.002)
w.finish()
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")]))
    return env


def test_a_writer_killed_with_sigkill_resumes_to_the_same_pack(tmp_path: Path) -> None:
    n = 200
    reference = tmp_path / "ref.pack"
    _write(reference, n)
    path = tmp_path / "a.pack"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER_CHILD, str(path), str(HERE), str(n)],
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    assert child.stdout is not None
    written = -1
    for line in child.stdout:
        written = int(line)
        if written >= 30:
            child.kill()  # SIGKILL: no finish, no destructor, no final checkpoint
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the writer ended by itself at {written}"
    assert not path.exists(), "a killed writer left a file at the final name"

    done = _resume_and_finish(path, n)
    # Every fourth record is a checkpoint; the kill lost only the records after the last one.
    assert 28 <= done < n and done % 4 == 0
    assert path.read_bytes() == reference.read_bytes()
    assert _native.PackReader(path).verify_all() == []


READER_CHILD = """
import hashlib, sys
from pillsnap._native import PackReader
r = PackReader(sys.argv[1])
r.advise("hotset")
h = hashlib.sha256()
for _ in range(20):
    for i in range(len(r)):
        h.update(r.record(i))
print(h.hexdigest(), r.verify_all(), r.warm(), flush=True)
"""


def test_two_processes_read_one_pack_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 60)
    r = _native.PackReader(path)
    h = hashlib.sha256()
    for _ in range(20):
        for i in range(len(r)):
            h.update(r.record(i))
    expected = f"{h.hexdigest()} [] {r.size_bytes}"

    children = [
        subprocess.Popen(
            [sys.executable, "-c", READER_CHILD, str(path)],
            stdout=subprocess.PIPE,
            env=_child_env(),
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [c.communicate(timeout=60)[0].strip() for c in children]
    assert [c.returncode for c in children] == [0, 0]
    assert outputs == [expected, expected]


def test_advise_and_warm_return_what_they_did(tmp_path: Path) -> None:
    path = tmp_path / "a.pack"
    _write(path, 30)
    r = _native.PackReader(path)
    data_bytes = r.header()["index_offset"] - PAGE

    hot = r.advise("hotset")
    assert hot == {
        "policy": "hotset",
        "willneed": True,
        "lock_requested": 0,
        "locked_bytes": 0,
        "lock_error": None,
    }
    # A budget larger than the data is capped to it; a refused mlock is reported, not raised.
    locked = r.advise("hotset", lock_bytes=1 << 40)
    assert locked["lock_requested"] == data_bytes
    if locked["lock_error"] is None:
        assert locked["locked_bytes"] == data_bytes
    else:
        assert locked["locked_bytes"] == 0
        assert locked["lock_error"].split(":")[0] in {"EPERM", "ENOMEM", "EAGAIN"}
        assert "RLIMIT_MEMLOCK" in locked["lock_error"]
    small = r.advise("hotset", lock_bytes=3 * PAGE + 5)
    assert small["lock_requested"] == 3 * PAGE

    none = r.advise("none")
    assert none["policy"] == "none" and none["willneed"] is False
    assert none["locked_bytes"] == 0
    with pytest.raises(ValueError, match='valid: "none", "hotset"'):
        r.advise("always")

    assert r.warm() == r.size_bytes
    assert r.warm(threads=1) == r.size_bytes
