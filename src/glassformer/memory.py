"""Measuring memory: the most tensor bytes a computation holds alive at once.

`peak_tensor_bytes(fn)` runs fn and watches every tensor torch creates while it runs (through a
dispatch mode, torch's hook for seeing each operation): each new storage adds its bytes when it
is created and removes them when Python frees it. The maximum of that running total is the
peak. Tensors that existed before the call (the inputs, the weights) are not counted.
`available_bytes()` says how much memory the machine has left, for checks made before allocating.

    >>> import torch
    >>> x = torch.ones(1000)
    >>> _, peak = peak_tensor_bytes(lambda: (x * 2) + 1)   # x*2 lives while +1 makes the result
    >>> peak
    8000
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _LiveBytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self.live:    # a view of a tensor already counted
                continue
            self.live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._freed, key)
        return out

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def peak_tensor_bytes(fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, int]:
    """(fn(*args, **kwargs), the most bytes of new tensors alive at any moment during the call)."""
    watcher = _LiveBytes()
    with torch.no_grad(), watcher:
        result = fn(*args, **kwargs)
    return result, watcher.peak


def available_bytes() -> int | None:
    """Memory this machine can still give a process without swapping (Linux: MemAvailable; elsewhere
    the physical memory), or None where neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # Windows has no sysconf
        return None
