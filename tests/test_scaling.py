"""The scaling runs' family and recipe (analysis/scaling.py), checked without training anything:
what issue 19 asks of the family, and that the runs differ only in shape and token budget."""

from __future__ import annotations

import dataclasses

import pytest

from glassformer.analysis import scaling
from glassformer.model import build_model


def non_embedding(size: str) -> int:
    d, layers, heads = scaling.SIZES[size]
    return scaling.parameter_counts(build_model(scaling.run_config(d, layers, heads, 2048).model)).non_embedding


def test_the_family_spans_at_least_30x_in_non_embedding_parameters_at_3_budgets():
    counts = sorted(non_embedding(size) for size in scaling.SIZES)
    assert len(counts) >= 6 and counts[-1] / counts[0] >= 30, counts
    assert len(counts) == len(set(counts))                                   # no two sizes alike
    assert len(scaling.BUDGETS) >= 3 and len(set(scaling.BUDGETS)) == len(scaling.BUDGETS)


def test_runs_differ_only_in_shape_and_budget():
    small, large = scaling.run_config(16, 1, 2, 245_760), scaling.run_config(128, 4, 4, 3_932_160)
    assert (small.max_steps, large.max_steps) == (120, 1920)
    assert (small.warmup_steps, large.warmup_steps) == (12, 100)            # 10% of the steps, at most 100
    train_changes = {f.name for f in dataclasses.fields(small) if getattr(small, f.name) != getattr(large, f.name)}
    assert train_changes == {"model", "max_steps", "warmup_steps", "eval_interval", "checkpoint_interval"}
    model_changes = {k for k, v in small.model.to_dict().items() if v != large.model.to_dict()[k]}
    derived = {"n_kv_heads", "head_dim", "d_expert"}                         # follow n_heads, d_model, d_mlp
    assert model_changes == {"d_model", "n_layers", "n_heads", "d_mlp"} | derived
    assert (large.model.d_mlp, large.model.position, large.model.mlp) == (344, "rope", "swiglu")   # the course model's


@pytest.mark.parametrize("tokens", [0, 1000, 2048 * 3 + 1])
def test_a_budget_that_is_not_whole_steps_is_refused(tokens):
    with pytest.raises(ValueError, match="multiple of 2048"):
        scaling.run_config(16, 1, 2, tokens)


def test_a_missing_table_names_the_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="ship_scaling_runs.py"):
        scaling.load_runs(tmp_path / "runs.json")
