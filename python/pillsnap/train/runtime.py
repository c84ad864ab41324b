"""Where and how the classifier runs: device, precision, TF32 and torch.compile.

Each choice the hardware forces is one log line, so a CPU run and a GPU run share one code
path and the log says how they differed: a ``decision:`` (INFO) where an automatic or
default setting simply has no GPU to use, a ``fallback:`` (WARNING) only where the config
explicitly asked for something this machine cannot give::

    python -m pillsnap.train train.compile=default   # grep 'decision:\\|fallback:' train.log
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from pillsnap.config.schema import TrainConfig
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


@dataclass
class Precision:
    """The autocast dtype (None: fp32) and whether a GradScaler guards fp16 gradients."""

    device_type: str
    dtype: torch.dtype | None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> AbstractContextManager[object]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        # A disabled scaler keeps one step path and still saves/loads its (empty) state.
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def pick_precision(train: TrainConfig, device: torch.device) -> Precision:
    """``amp_dtype=auto``: bf16 where the GPU supports it (no scaler), else fp16 + scaler.

    On the CPU ``auto`` leaves autocast off: bf16 there is emulated, and slower than fp32,
    on CPUs without native bf16 instructions, and fp16 autocast on CPU has no benefit.
    ``amp_dtype=bf16`` asks for it: granted where the CPU has AVX512-BF16 or AMX (speed:
    docs/benchmarks.md, classifier demo).
    """
    if not train.amp:
        log_decision(logger, "amp", "off", "train.amp=false: fp32")
        return Precision(device.type, None)
    if device.type != "cuda":
        return _cpu_precision(train, device)
    bf16_ok = torch.cuda.is_bf16_supported()
    if train.amp_dtype == "bf16" and not bf16_ok:
        log_decision(logger, "amp", "fp16", "this GPU has no bf16: fp16 with a GradScaler",
                     fallback=True)
        return Precision("cuda", torch.float16)
    if train.amp_dtype == "fp16" or not bf16_ok:
        log_decision(logger, "amp", "fp16", "fp16 autocast with a GradScaler")
        return Precision("cuda", torch.float16)
    log_decision(logger, "amp", "bf16", "bf16 autocast, no GradScaler needed")
    return Precision("cuda", torch.bfloat16)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 convolutions and matmuls run natively, not emulated."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so probe
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _cpu_precision(train: TrainConfig, device: torch.device) -> Precision:
    if train.amp_dtype == "bf16" and device.type == "cpu" and cpu_has_native_bf16():
        log_decision(logger, "amp", "bf16", "train.amp_dtype=bf16 and this CPU has native bf16 "
                     "(AVX512-BF16/AMX): bf16 autocast")
        return Precision("cpu", torch.bfloat16)
    if train.amp_dtype == "auto":
        # amp_dtype=auto on a CPU is fp32 by design (see pick_precision): not a failure.
        log_decision(logger, "amp", "fp32", f"no CUDA ({device}): CPU autocast is off unless "
                     "train.amp_dtype=bf16 on a CPU with native bf16")
    elif train.amp_dtype == "bf16":
        log_decision(logger, "amp", "fp32", f"train.amp_dtype=bf16, but {device} has no native "
                     "bf16 (AVX512-BF16/AMX)", fallback=True)
    else:
        log_decision(logger, "amp", "fp32", f"train.amp_dtype={train.amp_dtype}, but fp16 "
                     f"autocast needs CUDA ({device})", fallback=True)
    return Precision(device.type, None)


def set_tf32(train: TrainConfig, device: torch.device) -> None:
    """TF32 matmuls/convolutions on Ampere+ GPUs: about 2x fp32 speed at tiny precision cost."""
    if device.type != "cuda":
        if train.tf32:  # the default: "TF32 where there is a GPU for it", not a demand
            log_decision(logger, "tf32", False, "no CUDA: TF32 is a GPU matmul mode")
        return
    torch.backends.cuda.matmul.allow_tf32 = train.tf32
    torch.backends.cudnn.allow_tf32 = train.tf32
    log_decision(logger, "tf32", train.tf32, "train.tf32")


def compile_mode(train: TrainConfig, device: torch.device) -> str:
    """The torch.compile mode to use; CUDA graphs come from mode ``reduce-overhead``."""
    mode = train.compile
    if train.cuda_graphs:
        if device.type != "cuda":  # off by default: true here is an explicit request
            log_decision(logger, "cuda_graphs", False, "train.cuda_graphs=true, but no CUDA",
                         fallback=True)
        elif mode in ("none", "default"):
            log_decision(logger, "compile", "reduce-overhead", "train.cuda_graphs=true: "
                         "torch.compile captures CUDA graphs in this mode")
            mode = "reduce-overhead"
    return mode


class CompiledForward:
    """Call the compiled model; on its first failure fall back to eager for good.

    torch.compile fails lazily, at the first call (no C++ compiler, unsupported op), so the
    fallback has to sit at the call, not at ``torch.compile`` itself. Out-of-memory errors
    pass through: they belong to the OOM handler, not to the compiler.
    """

    def __init__(self, eager: torch.nn.Module, mode: str) -> None:
        self.eager = eager
        self.mode = mode
        self.compiled: Callable[..., torch.Tensor] | None = None
        if mode == "none":
            return
        try:
            self.compiled = torch.compile(eager, mode=None if mode == "default" else mode)
        except Exception as exc:
            self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        self.compiled = None
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        log_decision(logger, "compile", "eager", f"torch.compile mode={self.mode} failed: "
                     f"{type(exc).__name__}: {first}", fallback=True)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(images)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:
                self._fall_back(exc)
        return self.eager(images)
