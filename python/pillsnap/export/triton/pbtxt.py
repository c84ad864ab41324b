"""Triton ``config.pbtxt`` text from plain Python values (protobuf text format).

    io("input", [Tensor("IMAGE", "TYPE_UINT8", (-1,))])
    # 'input [\n  { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1 ] }\n]'

Written by hand rather than through tritonclient's protobufs so export needs no gRPC
packages; the test suite loads every generated file in the real tritonserver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Tensor:
    """One input or output: Triton data type name and dims (without the batch dim)."""

    name: str
    dtype: str
    dims: tuple[int, ...]


def quoted(text: str) -> str:
    return json.dumps(text)  # protobuf text strings escape like JSON for our ASCII names


def dims(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def io(kind: str, tensors: Sequence[Tensor]) -> str:
    """An ``input [...]`` or ``output [...]`` block listing every tensor."""
    rows = ",\n".join(f"  {{ name: {quoted(t.name)} data_type: {t.dtype} dims: {dims(t.dims)} }}"
                      for t in tensors)
    return f"{kind} [\n{rows}\n]"


def parameters(values: Mapping[str, str]) -> str:
    return "\n".join(f"parameters {{ key: {quoted(k)} value {{ string_value: {quoted(v)} }} }}"
                     for k, v in values.items())


def instances(count: int, kind: str) -> str:
    return f"instance_group [ {{ count: {count} kind: {kind} }} ]"


def header(name: str, backend: str, max_batch_size: int) -> str:
    key = "platform" if backend == "ensemble" else "backend"
    return f"name: {quoted(name)}\n{key}: {quoted(backend)}\nmax_batch_size: {max_batch_size}"


def join(*blocks: str) -> str:
    return "\n".join(b for b in blocks if b) + "\n"
