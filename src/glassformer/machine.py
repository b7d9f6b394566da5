"""What this CPU is, and what was measured on it, kept for next time.

Two choices in glassformer depend on the processor: the training precision (precision.py:
bf16 or fp32) and whether int8 weights are a speed path (model/quantize.py). Both rest first on
**facts** the processor and torch report, which do not change from one second to the next:

- the instruction-set flags the operating system lists (Linux's /proc/cpuinfo: `avx512_bf16`,
  `amx_bf16`, `avx512_vnni`, ... on x86; `bf16`, `i8mm` on ARM);
- torch's own kernel level (`torch.backends.cpu.get_cpu_capability()`: "AVX512", "AVX2", ...)
  and whether its oneDNN library will compute in bf16 (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`);
  both obey the environment variables that limit the instruction set (`ISA_ENV`), which is how
  an AVX2-only CPU can be imitated on a bigger one.

A timing then only confirms what the facts predict (timing.compare: in turns, repeated, a
median with its interval). The facts, the timings and the decision are stored in one small JSON
file per machine in the user cache directory ($GLASSFORMER_CACHE overrides it), under a key made of
the CPU model, the torch version and those environment variables, so a busy moment on the
machine cannot change a decision later: every later process reads the file. It is measured and
written under a lock (`section`), so processes that start together (the course server and a
chapter, two workers) measure once: the others wait and read. `glassformer info`
prints it; `glassformer info --remeasure` measures again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

try:
    import fcntl  # POSIX. Without it (Windows) two processes starting together may each measure, and
except ImportError:  # pragma: no cover   the later write keeps only its own result for that section.
    fcntl = None

ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS",
           "MKL_ENABLE_INSTRUCTIONS")
# The flags that bear on these choices, x86 names then ARM names (/proc/cpuinfo spells them so).
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
         "amx_int8", "bf16", "i8mm", "asimddp", "sve")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")           # bf16 dot-product instructions
# oneDNN instruction-set limits below the first x86 level with bf16 dot products (AVX512_CORE_BF16).
NO_BF16_LIMITS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
RECORD_VERSION = 1


def _cpuinfo() -> tuple[str, tuple[str, ...] | None]:
    """(model name, the FLAGS present) from /proc/cpuinfo; flags None where the OS does not say."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), None
    model, flags = "", None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "cpu model") and not model:
            model = value.strip()
        elif name in ("flags", "features") and flags is None:
            present = set(value.split())
            flags = tuple(f for f in FLAGS if f in present)
    return model or platform.machine(), flags


@dataclass(frozen=True)
class CpuFacts:
    """What the processor and torch report; nothing here is timed."""

    model: str                          # e.g. "AMD EPYC" or "Intel(R) Xeon(R) Platinum 8481C"
    flags: tuple[str, ...] | None       # the FLAGS the OS lists (None: it does not say)
    torch_isa: str                      # torch's kernel level: "AVX512", "AVX2", "DEFAULT" (e.g. ARM), ...
    onednn_bf16: bool                   # oneDNN will compute in bf16 (it may still emulate it)
    isa_env: tuple[tuple[str, str], ...]  # the ISA_ENV variables that are set, and their values
    torch_version: str

    @property
    def bf16_instructions(self) -> bool:
        """bf16 products run on bf16 instructions: oneDNN computes in bf16, no variable limits it
        below the bf16 level, and the CPU lists bf16 dot-product instructions (where the OS
        does not list flags, oneDNN's word is taken)."""
        if not self.onednn_bf16:
            return False
        limits = {value.upper() for name, value in self.isa_env if name != "ATEN_CPU_CAPABILITY"}
        if limits & set(NO_BF16_LIMITS):
            return False
        return self.flags is None or any(f in self.flags for f in BF16_FLAGS)

    @property
    def key(self) -> str:
        """Which record is this machine's: CPU model, torch version, ISA variables."""
        ident = json.dumps([self.model, self.torch_version, list(self.isa_env)])
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    def describe(self) -> str:
        flags = "not listed by the OS" if self.flags is None else (" ".join(self.flags) or "none of interest")
        env = ", ".join(f"{k}={v}" for k, v in self.isa_env) or "none set"
        return (f"CPU: {self.model}\n  flags: {flags}\n  torch {self.torch_version}: kernels {self.torch_isa}, "
                f"oneDNN bf16 {'yes' if self.onednn_bf16 else 'no'}\n  instruction-set variables: {env}")


@functools.cache
def facts() -> CpuFacts:
    """This process's CpuFacts (they cannot change while it runs)."""
    model, flags = _cpuinfo()
    return CpuFacts(model=model, flags=flags, torch_isa=torch.backends.cpu.get_cpu_capability(),
                    onednn_bf16=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                    isa_env=tuple((k, os.environ[k]) for k in ISA_ENV if os.environ.get(k)),
                    torch_version=torch.__version__)


def record_path(cpu: CpuFacts | None = None) -> Path:
    from glassformer.data import cache_dir

    return cache_dir() / "machine" / f"{(cpu or facts()).key}.json"


def load_record(cpu: CpuFacts | None = None) -> dict:
    """This machine's stored measurements, {} if none (or the file is unreadable: measured again)."""
    cpu = cpu or facts()
    try:
        record = json.loads(record_path(cpu).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION or record.get("key") != cpu.key:
        return {}
    return record


_in_process = threading.RLock()   # this process's threads take turns at the records
_held: set[Path] = set()          # the lock files this process holds


@contextlib.contextmanager
def _locked(cpu: CpuFacts):
    """Hold this machine's record for one process: two processes that start together (the course
    server and a chapter, two test workers) measure once, not each, and neither overwrites the
    section the other just stored. Re-entrant: one probe may need another's decision (int8's asks
    for the bf16 one)."""
    path = record_path(cpu).with_suffix(".lock")
    with _in_process:
        if path in _held:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                except OSError:  # a file system without locks (some network homes): go on without
                    pass
            _held.add(path)
            try:
                yield
            finally:
                _held.discard(path)


def section(name: str, measure: Callable[[], dict], stale: Callable[[dict | None], bool] = lambda data: data is None,
            cpu: CpuFacts | None = None) -> dict:
    """Section `name` of this machine's record; measured with `measure()` and stored when there is none
    or `stale(data)` says it no longer fits. A process that finds another measuring waits for it and
    reads its result."""
    cpu = cpu or facts()
    data = load_record(cpu).get(name)
    if not stale(data):
        return data
    with _locked(cpu):
        data = load_record(cpu).get(name)  # measured meanwhile by the process that held the lock?
        return data if not stale(data) else _store(name, measure(), cpu)


def save_section(name: str, data: dict, cpu: CpuFacts | None = None) -> dict:
    """Store one probe's evidence in this machine's record and return it as stored (with the time)."""
    cpu = cpu or facts()
    with _locked(cpu):
        return _store(name, data, cpu)


def _store(name: str, data: dict, cpu: CpuFacts) -> dict:
    """Write the record with section `name` replaced (the caller holds the lock). The file is written
    whole, atomically: a process reading it meanwhile sees the old file or the new one, never half of one."""
    record = load_record(cpu) or {"version": RECORD_VERSION, "key": cpu.key, "facts": asdict(cpu)}
    record[name] = {**data, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = record_path(cpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(record, tmp, indent=1)
    os.replace(tmp.name, path)
    return record[name]


def forget(cpu: CpuFacts | None = None) -> None:
    """Delete this machine's record: the next probe measures again."""
    record_path(cpu).unlink(missing_ok=True)
