"""Pack write/read throughput through the Python binding (numbers in docs/pack-format.md).

    PYTHONPATH=python python scripts/bench_pack.py [DIR] [RECORDS]

Writes RECORDS (default 10,000) random payloads of 30-50 KB with ``add_many`` and with one
``add`` per record, then times ``record(i)`` copies, ``verify_all`` and ``labels``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from pillsnap._native import PackReader, PackWriter

HASH = "0123456789abcdef"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    blob = os.urandom((1 << 20) + 50_000)
    records = [
        (blob[(i * 104_729) % (1 << 20) :][: 30_000 + i * 7919 % 20_001], 480, 629, i % 4500, [], i)
        for i in range(n)
    ]
    mb = sum(len(r[0]) for r in records) / 1e6
    for mode in ("add", "add_many"):
        path = out / f"bench_{mode}.pack"
        t = time.perf_counter()
        with PackWriter(path, class_hash=HASH) as w:
            if mode == "add_many":
                w.add_many(records)
            else:
                for r in records:
                    w.add(*r)
        s = time.perf_counter() - t
        print(f"{mode:9s} {mb / s:6.0f} MB/s  {n / s:7.0f} records/s")
    reader = PackReader(path)
    reader.warm()
    t = time.perf_counter()
    for i in range(n):
        reader.record(i)
    s = time.perf_counter() - t
    print(f"record(i) {mb / s:6.0f} MB/s  {s / n * 1e6:5.1f} us per copy (page cache)")
    t = time.perf_counter()
    bad = reader.verify_all()
    print(f"verify_all {mb / (time.perf_counter() - t):5.0f} MB/s  ({len(bad)} bad)")
    t = time.perf_counter()
    reader.labels()
    print(f"labels()  {(time.perf_counter() - t) * 1e3:.2f} ms for {n} records")
    for mode in ("add_many", "add"):
        (out / f"bench_{mode}.pack").unlink()


if __name__ == "__main__":
    main()
