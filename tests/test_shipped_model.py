"""The course model shipped in the package: small, documented, and as good as its card says."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from glassformer.data import TINYSHAKESPEARE_SHA256
from glassformer.generate import generate
from glassformer.model.config import ModelConfig
from glassformer.registry import COURSE_MODEL_DIR, load_model
from glassformer.train import TrainConfig, train_preset, validation_loss


@pytest.fixture(scope="module")
def course():
    return load_model("course")


def test_card_describes_how_it_was_made(course):
    card = course.card
    assert card["data_sha256"] == TINYSHAKESPEARE_SHA256
    # fields added to ModelConfig after the card was written take their defaults (dense, no experts)
    assert ModelConfig.from_dict(card["preset_config"]["model"]) == course.model.config
    # made by `glassformer train --preset course` exactly as the preset stands in this version;
    # max_steps is what the time budget fitted on the machine that trained it
    made = TrainConfig.from_dict(card["preset_config"])
    assert dataclasses.replace(made, max_steps=1) == dataclasses.replace(train_preset("course"), max_steps=1)
    assert card["steps"] == made.max_steps and card["wall_time_s"] <= 600
    assert card["cpu"] and card["dtype_used"] in ("bf16", "fp32")
    for key in ("steps", "wall_time_s", "final_train_loss", "final_val_loss"):
        assert key in card
    assert card["final_val_loss"] <= 1.50


def test_files_are_small():
    size = sum(p.stat().st_size for p in COURSE_MODEL_DIR.iterdir())
    assert size < 6 * 2**20, f"shipped model is {size / 2**20:.1f} MiB"


def test_validation_loss_matches_the_card(course):
    measured = validation_loss(course.model, course.tokenizer)  # fp32, the whole validation split
    assert abs(measured - course.card["final_val_loss"]) <= 0.005, (measured, course.card["final_val_loss"])


def test_samples_look_like_a_play(course):
    tok = course.tokenizer
    out = generate(course.model, tok.encode("ROMEO:\n"), 300, temperature=0.8, top_k=40, seed=0, truncate=True)
    text = tok.decode(out.tolist())
    words = [w.strip(".,;:!?'").lower() for w in text.split()]
    common = {"the", "and", "i", "to", "of", "a", "my", "you", "that", "is", "not", "with", "me", "it", "his", "be"}
    assert sum(w in common for w in words) >= 8, text     # real English function words
    assert text.count("\n") >= 4, text                     # line structure
    assert any(line.rstrip().endswith(":") and line.isupper() for line in text.splitlines()[1:]), text  # speakers
