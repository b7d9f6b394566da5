"""Run the machine probes (bf16 precision, int8 kernel) in N fresh processes; print their decisions.

    python tests/capability_probe.py N      -> one JSON list on stdout, one entry per process

Importing torch takes ~2 s here, so this process imports it once and forks N children one after
the other: each child starts with no glassformer module loaded, nothing memoized and an empty
cache directory of its own, so each really measures (it reports whether its machine record was
absent before it ran). Set ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA before starting this script
to probe an imitated smaller CPU. Used by tests/test_capability.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch  # noqa: F401  (imported once, before the forks: the children share it)


def child(write_fd: int) -> None:
    os.environ["GLASSFORMER_CACHE"] = tempfile.mkdtemp(prefix="probe-cache-")
    from glassformer import machine, precision
    from glassformer.model import quantize

    fresh = not machine.record_path().exists()
    cap = precision.cpu_capability()
    kernel = quantize.int8_kernel()
    result = {"fresh": fresh, "dtype": cap.best_dtype, "bf16_instructions": cap.native_bf16,
              "bf16": cap.summary, "int8_fast": kernel.fast, "int8": f"{kernel.name} {kernel.figure} {kernel.verdict}",
              "int8_expected": quantize.expected_fast(kernel.name, kernel.activations)}
    os.write(write_fd, (json.dumps(result) + "\n").encode())


def main() -> None:
    results = []
    for _ in range(int(sys.argv[1])):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: probe, report, leave without running the parent's cleanup
            os.close(read_fd)
            code = 0
            try:
                child(write_fd)
            except BaseException as exc:  # noqa: BLE001  (reported to the parent)
                os.write(write_fd, (json.dumps({"error": repr(exc)}) + "\n").encode())
                code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            results.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
