"""Chapter 13's library and shipped models, each checked against an independent computation: the
instruction rules against every shipped answer; LoRA's trainable-parameter count against
r·(d_in + d_out) summed by hand over the model's layers; the shipped assistants' card against a fresh
scoring of their stored weights (and the issue's bars: +50 points over the base model, reply-only
loss ahead of all-token loss); the DPO history's start against its definition; the background
runner's finetune entry; the sampling settings chapter 8 saves and chapter 13 reads."""

from __future__ import annotations

import json
import math

import pytest
import torch

from glassformer import instructions, lora
from glassformer.finetune import INSTRUCTIONS_DIR, evaluate, read_examples
from glassformer.registry import ASSISTANT_DIR, load_model

SCORED = 30        # held-out examples re-scored here (the card holds all 300, one verdict each)


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((ASSISTANT_DIR / "card.json").read_text())


def test_the_rules_give_the_shipped_answer_for_every_shipped_example():
    rows = [json.loads(line) for name in ("train.jsonl", "test.jsonl")
            for line in (INSTRUCTIONS_DIR / name).read_text().splitlines()]
    assert len(rows) == 1200
    wrong = [r for r in rows if instructions.answer(r["prompt"]) != r["response"]
             or instructions.task_of(r["prompt"]) != r["task"]]
    assert wrong == []
    assert instructions.answer("Last word: ...!") is None and instructions.answer("Say hello") is None


def test_lora_trains_r_times_d_in_plus_d_out_per_adapted_layer_and_the_card_agrees(card):
    import copy

    base = load_model("course").model
    for r in card["lora_ranks"]:
        model = copy.deepcopy(base)
        counted = lora.add_lora(model, r)
        layers = [m for m in model.modules() if isinstance(m, lora.LoRALinear)]
        by_hand = sum(r * (m.base.weight.shape[0] + m.base.weight.shape[1]) for m in layers)
        assert counted == lora.trainable_parameters(model) == by_hand == card["runs"][f"lora-r{r}"]["trainable_parameters"]
    assert card["runs"]["sft"]["trainable_parameters"] == sum(p.numel() for p in base.parameters())


def test_the_shipped_assistants_score_what_the_card_says_and_clear_the_issues_bars(card):
    held_out = read_examples(INSTRUCTIONS_DIR / "test.jsonl")
    assert card["held_out_examples"] == len(held_out) == 300
    base, sft, every = card["base"], card["runs"]["sft"]["after_fp16"], card["runs"]["sft-all-tokens"]["after_fp16"]
    assert sft["exact_match"] - base["exact_match"] >= 0.50
    assert sft["exact_match"] > every["exact_match"]
    assert card["runs"]["sft"]["steps"] == card["runs"]["sft-all-tokens"]["steps"] == card["steps"]
    for name in ("sft", "sft-all-tokens", "lora-r8", "dpo"):
        loaded = load_model(f"assistant/{name}")
        now = evaluate(loaded.model, loaded.tokenizer, held_out[:SCORED], per_example=True)["per_example"]
        shipped = (card["dpo"]["all_tasks_after"] if name == "dpo" else card["runs"][name]["after_fp16"])
        differ = sum(a != b for a, b in zip(now, shipped["per_example"][:SCORED]))
        assert differ <= 1, f"{name}: {differ} of {SCORED} verdicts differ from the card"   # greedy near-ties only
        assert len(shipped["per_example"]) == 300
        assert abs(sum(shipped["per_example"]) / 300 - shipped["exact_match"]) < 1e-9


def test_the_dpo_history_starts_at_its_definition_and_the_preference_is_learned(card):
    rows = card["dpo"]["history"]
    start, end = rows[0], rows[-1]
    assert start["step"] == 0 and end["step"] == card["dpo"]["recipe"]["steps"]
    # At step 0 the policy is the reference: every implicit reward is 0, the loss is log 2, no pair is preferred.
    assert abs(start["held_out_margin"]) < 1e-6 and abs(start["held_out_kl"]) < 1e-6
    assert abs(start["held_out_loss"] - math.log(2)) < 1e-4 and start["held_out_accuracy"] == 0.0
    assert end["held_out_margin"] > 0 and end["held_out_accuracy"] > 0.5 and end["held_out_kl"] > 0


def test_the_background_runner_runs_finetune(tmp_path):
    from glassformer.course import live_training

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"First word: {w} and more", "response": w}) + "\n"
                            for w in ("Good", "Nay", "What", "Come") * 4))
    run = tmp_path / "runs" / "sft"
    run.mkdir(parents=True)
    lock = tmp_path / live_training.LOCK_NAME
    lock.write_text("{}")
    code = live_training.main([str(run), str(lock), "--entry", "finetune", "--out", str(run), "--no-progress",
                               "--data", str(data), "--eval-data", str(data), "--max-steps", "3", "--eval-limit", "2",
                               "--batch-size", "4", "--dtype", "fp32"])
    assert code == 0 and json.loads((run / "exit.json").read_text())["exit_code"] == 0
    card = json.loads((run / "card.json").read_text())
    assert card["steps"] == 3 and card["after"]["n"] == 2 and load_model(str(run)).model is not None
    assert "finetune" in live_training.ENTRY_POINTS


def test_sampling_settings_are_shared_and_a_bad_saved_value_falls_back_to_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    from glassformer.course import common, store

    assert common.saved_sampling(65) == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    store.set_setting("sampling", {"temperature": 0.5, "top_k": 500, "top_p": "high", "min_p": 0.05})
    assert common.saved_sampling(65) == {"temperature": 0.5, "top_k": 0, "top_p": 1.0, "min_p": 0.05}
    assert common.saved_sampling(1000)["top_k"] == 0            # 500 is beyond the slider's 100
    store.set_setting("sampling", "not a dict")
    assert common.saved_sampling(65)["temperature"] == 1.0
