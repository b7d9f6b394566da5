"""The machine's capability decisions: facts first, a timing only confirms, the result kept per machine.

The probe test runs the real probes (precision.cpu_capability, quantize.int8_kernel) in 8 fresh
processes, each with an empty cache so each really measures, while another process keeps a core
busy: all 8 must decide the same, natively and with the CPU limited to AVX2 through torch's and
oneDNN's environment variables (where bf16 is emulated, ~50x slower). The other tests feed the
decision rules made-up facts and timings: nothing in them is timed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glassformer import machine, precision, timing
from glassformer.model import quantize

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PROBE = Path(__file__).parent / "capability_probe.py"


def facts(**changes) -> machine.CpuFacts:
    base = machine.CpuFacts(model="Test CPU", flags=("avx2", "avx512f", "avx512_bf16"), torch_isa="AVX512",
                            onednn_bf16=True, isa_env=(), torch_version="2.13.0")
    return dataclasses.replace(base, **changes)


def comparison(ratio: float, runs: int = 11) -> timing.Comparison:
    return timing.Comparison("fp32", "bf16", [ratio] * runs, [1.0] * runs)


# --- what the CPU is ---------------------------------------------------------------------------

@pytest.mark.parametrize("change,expected", [
    ({}, True),
    ({"flags": ("avx2", "avx512f")}, False),                       # AVX-512 without bf16 instructions: emulated
    ({"onednn_bf16": False}, False),                               # oneDNN will not compute in bf16
    ({"isa_env": (("ONEDNN_MAX_CPU_ISA", "AVX2"),)}, False),       # limited below bf16 by a variable
    ({"isa_env": (("ONEDNN_MAX_CPU_ISA", "avx512_core"),)}, False),
    ({"isa_env": (("ATEN_CPU_CAPABILITY", "avx2"),)}, True),        # limits torch's own kernels, not oneDNN's
    ({"flags": None}, True),                                       # the OS lists no flags: oneDNN's word
    ({"flags": ("bf16", "i8mm")}, True),                           # ARM's name for it
])
def test_bf16_instructions_come_from_the_reported_facts(change, expected):
    assert facts(**change).bf16_instructions is expected


def test_the_record_key_changes_with_model_torch_and_isa_variables_only():
    base = facts()
    assert facts().key == base.key
    assert facts(model="Other CPU").key != base.key
    assert facts(torch_version="2.14.0").key != base.key
    assert facts(isa_env=(("ONEDNN_MAX_CPU_ISA", "AVX2"),)).key != base.key


def test_this_process_reads_its_facts():
    cpu = machine.facts()
    assert cpu.torch_isa == torch.backends.cpu.get_cpu_capability()
    assert cpu.onednn_bf16 == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert cpu.model and cpu.torch_version == torch.__version__
    assert dict(cpu.isa_env) == {k: os.environ[k] for k in machine.ISA_ENV if os.environ.get(k)}


# --- decisions: the facts decide, a timing can only veto ---------------------------------------

@pytest.mark.parametrize("native,ratio,dtype", [
    (True, 2.1, "bf16"),      # instructions, measured faster
    (True, 1.0, "bf16"),      # instructions, no clear difference: the facts stand
    (True, 0.3, "fp32"),      # instructions, but measured clearly slower: vetoed
    (False, 3.0, "fp32"),     # no instructions: a fast-looking timing does not promote bf16
    (False, 0.02, "fp32"),
])
def test_bf16_decision(native, ratio, dtype):
    c = comparison(ratio)
    cap = precision.Capability("AVX512", native, c.speedup, c.interval, c.runs, c.verdict)
    assert cap.best_dtype == dtype
    assert cap.reason and cap.summary.startswith("AVX512")


@pytest.mark.parametrize("name,act,ratio,fast", [
    ("int8pack", torch.bfloat16, 5.0, True),
    ("int8pack", torch.bfloat16, 1.01, True),     # unclear: the facts stand
    ("int8pack", torch.bfloat16, 0.4, False),     # clearly slower: vetoed
    ("int8pack", torch.float32, 3.0, False),      # fp32 activations: not the kernel's fast path
    ("dequantize", torch.float32, 2.0, False),
])
def test_int8_decision(name, act, ratio, fast):
    data = comparison(ratio).as_dict()
    assert quantize._decide(name, act, data).fast is fast


# --- the record: measured once per machine, then read ------------------------------------------

@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_CACHE", str(tmp_path))
    precision.cpu_capability.cache_clear()
    quantize.int8_kernel.cache_clear()
    yield tmp_path
    precision.cpu_capability.cache_clear()
    quantize.int8_kernel.cache_clear()


def test_a_decision_is_measured_once_then_read_from_the_record(empty_cache, monkeypatch):
    calls = []

    def fake_measure(native, pairs=precision.PROBE_PAIRS):
        calls.append(native)
        return comparison(0.3 if len(calls) == 1 else 3.0)   # a first, "busy" measurement says slower

    monkeypatch.setattr(precision, "measure_bf16", fake_measure)
    monkeypatch.setattr(machine, "facts", lambda: facts())
    first = precision.cpu_capability()
    assert calls == [True] and first.best_dtype == "fp32" and first.measured_at
    precision.cpu_capability.cache_clear()                    # as a new process would start
    again = precision.cpu_capability()
    assert calls == [True] and again == first                  # read back, not measured again
    record = json.loads(machine.record_path(facts()).read_text())
    assert record["facts"]["model"] == "Test CPU" and record["bf16"]["verdict"] == "slower"
    assert precision.remeasure().best_dtype == "bf16" and calls == [True, True]   # only on request


def test_another_isa_limit_is_another_record(empty_cache, monkeypatch):
    monkeypatch.setattr(precision, "measure_bf16", lambda native, pairs=11: comparison(2.0 if native else 0.05))
    monkeypatch.setattr(machine, "facts", lambda: facts())
    assert precision.cpu_capability().best_dtype == "bf16"
    precision.cpu_capability.cache_clear()
    monkeypatch.setattr(machine, "facts", lambda: facts(isa_env=(("ONEDNN_MAX_CPU_ISA", "AVX2"),)))
    assert precision.cpu_capability().best_dtype == "fp32"
    assert len(list((empty_cache / "machine").glob("*.json"))) == 2


def test_a_damaged_record_is_measured_again(empty_cache, monkeypatch):
    monkeypatch.setattr(machine, "facts", lambda: facts())
    path = machine.record_path(facts())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    monkeypatch.setattr(precision, "measure_bf16", lambda native, pairs=11: comparison(2.0))
    assert precision.cpu_capability().best_dtype == "bf16"
    assert json.loads(path.read_text())["bf16"]["speedup"] == pytest.approx(2.0)


def test_an_int8_record_made_for_other_activations_is_measured_again(empty_cache, monkeypatch):
    probes = []
    monkeypatch.setattr(machine, "facts", lambda: facts())
    monkeypatch.setattr(precision, "measure_bf16", lambda native, pairs=11: comparison(2.0))   # bf16 chosen
    monkeypatch.setattr(quantize, "_probe", lambda: probes.append(1) or ("int8pack", torch.bfloat16, comparison(4.0)))
    machine.save_section("int8", {"kernel": "int8pack", "activations": "float32", **comparison(0.5).as_dict()}, facts())
    kernel = quantize.int8_kernel()
    assert probes == [1] and kernel.activations == torch.bfloat16 and kernel.fast
    quantize.int8_kernel.cache_clear()
    assert quantize.int8_kernel() == kernel and probes == [1]     # now the record fits: read, not measured


TWO_AT_ONCE = """
import json, os, sys, time
from pathlib import Path
from glassformer import machine

log, arrived = Path(sys.argv[1]), Path(sys.argv[2])
(arrived / str(os.getpid())).touch()          # here, about to ask for the section

def measure():
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    deadline = time.time() + 60                # the other process has arrived too ...
    while len(list(arrived.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)                            # ... and, without a lock, has found no record and measures
    return {"pid": os.getpid()}

print(json.dumps(machine.section("demo", measure)))
"""


def test_two_processes_starting_together_measure_once(empty_cache, tmp_path):
    log, arrived = tmp_path / "measured.txt", tmp_path / "arrived"
    arrived.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", TWO_AT_ONCE, str(log), str(arrived)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert len(log.read_text().split()) == 1                       # one measured, the other waited and read
    assert outs[0] == outs[1] and outs[0]["pid"] == int(log.read_text())


NESTED = """
import json
from glassformer import machine

print(json.dumps(machine.section("outer", lambda: {"inner": machine.section("inner", lambda: {"y": 2})["y"]})))
"""


def test_a_measurement_may_ask_for_another_decision(empty_cache):
    """The lock is re-entrant: int8's probe asks for the bf16 decision while it holds the record. (In a
    process of its own with a deadline: with a lock that is not re-entrant it would wait forever.)"""
    try:
        done = subprocess.run([sys.executable, "-c", NESTED], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a section measured inside another's measurement waited forever")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["inner"] == 2
    assert {"inner", "outer"} <= set(machine.load_record())


def test_info_prints_the_facts_and_the_record(empty_cache, monkeypatch, capsys):
    from glassformer import cli

    monkeypatch.setattr(machine, "facts", lambda: facts())
    monkeypatch.setattr(precision, "measure_bf16", lambda native, pairs=11: comparison(2.0))
    monkeypatch.setattr(quantize, "_probe", lambda: ("int8pack", torch.bfloat16, comparison(4.0)))
    from glassformer.model import decode_kernels

    kernels = {"threads": 1, "errors": {}, "kernels": {"onednn": comparison(1.5).as_dict()}}
    monkeypatch.setattr(decode_kernels, "_probe", lambda: kernels)
    decode_kernels._stored.cache_clear()
    cli.main(["info"])
    out = capsys.readouterr().out
    assert "onednn 1.50×" in out and "fbgemm-int8 unavailable" in out
    assert "Test CPU" in out and "avx512_bf16" in out and "bf16" in out and str(machine.record_path(facts())) in out
    assert "2.00×" in out and "4.00×" in out
    monkeypatch.setattr(precision, "measure_bf16", lambda native, pairs=11: comparison(0.2))
    cli.main(["info", "--remeasure"])
    assert "0.20×" in capsys.readouterr().out
    decode_kernels._stored.cache_clear()       # the next test reads its own machine's record


# --- the real probe, 8 fresh processes beside a busy one -----------------------------------------

@pytest.mark.slow
def test_eight_fresh_processes_decide_the_same_beside_a_busy_core(tmp_path):
    """Both drivers (native, AVX2-only) run at once, each forking 8 probe processes in turn, while a
    ninth process spins: the load the issue saw flip the old single-timing probe."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runs = {name: subprocess.Popen([sys.executable, str(PROBE), "8"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True,
                                       # no .pyc writes: two processes writing one could leave it truncated
                                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env})
                for name, env in (("native", {}), ("avx2", AVX2_ONLY))}
        results = {}
        for name, proc in runs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            results[name] = json.loads(out)
    finally:
        burner.kill()
        burner.wait()
    for name, rows in results.items():
        assert len(rows) == 8 and all("error" not in r for r in rows), rows
        assert all(r["fresh"] for r in rows)                          # each process measured for itself
        decisions = {(r["dtype"], r["int8_fast"]) for r in rows}
        assert len(decisions) == 1, f"{name}: decisions differ between processes: {rows}"
        # ... and they are what the facts predict: the timing never overruled them under load.
        assert all(r["dtype"] == ("bf16" if r["bf16_instructions"] else "fp32") for r in rows), rows
        assert all(r["int8_fast"] == r["int8_expected"] for r in rows), rows
    assert {r["dtype"] for r in results["avx2"]} == {"fp32"}            # bf16 emulated: never chosen
    assert not any(r["int8_fast"] for r in results["avx2"])
