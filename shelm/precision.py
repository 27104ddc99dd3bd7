"""Numeric precision: which device a run uses, whether it computes bfloat16 natively, and the autocast scope.

Two settings choose precision, and `auto` in either resolves here, once, when a run's config is resolved, so
that config.json records what actually ran:
- `precision` is the trained agent's: under bfloat16 the CNN, LSTM and heads run under autocast while acting
  and in the PPO update; losses, advantages, returns and the optimizer state stay float32;
- `lm_dtype` is the frozen language model's weights and activations (and the frozen mappings feeding it).
`auto` picks bfloat16 where the hardware has bfloat16 arithmetic units (x86 CPUs with AMX or AVX-512 BF16, CUDA
devices that support it) and float32 elsewhere, where bfloat16 would be emulated and slower than float32.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

from shelm.errors import ShelmError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# /proc/cpuinfo flags of x86 CPUs whose vector units compute bfloat16 products natively.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def pick_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; a device this machine lacks is refused in one line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise ShelmError(f"--set device={name}: this machine has no CUDA device ({why}); use device=auto or cpu")
    return torch.device(name)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as Linux reports it, else platform.processor() (often empty on Linux), else 'unknown';
    benchmarks print it beside their figures."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not cpuinfo.is_file():
        return frozenset()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matmuls in hardware (and so faster than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def resolve_dtype(name: str, device: torch.device) -> str:
    """'auto' -> 'bfloat16' where native on `device`, else 'float32'; an explicit name is kept."""
    if name != "auto":
        return name
    return "bfloat16" if native_bf16(device) else "float32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """The agent's compute scope: bfloat16 autocast when `precision` is 'bfloat16', else plain float32."""
    if precision == "bfloat16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
