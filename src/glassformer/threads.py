"""One CPU thread for small work.

torch splits every matrix product across all the CPU's cores. For the small matrices of the
course's toy models (64 to 128 wide) handing the pieces out costs more than it saves, and far
more when other programs compete for the cores. Measured on a busy 2-core machine: the bigram's
200 training steps took 3.6 s on one thread and 20 s on two; the string reverser scored 300
strings in 0.33 s on one thread and 12 s on two.

`one_thread()` runs a block on one thread and restores the setting afterwards. The setting is
process-wide: in the course server, other learners' work running at that moment also gets one
thread for that while.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
