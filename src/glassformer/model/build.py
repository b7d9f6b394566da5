"""From a config to a model of the right family."""

from __future__ import annotations

from glassformer.model.config import ModelConfig
from glassformer.model.course import CourseGPT
from glassformer.model.decoder import DecoderLM
from glassformer.model.gpt2 import GPT2
from glassformer.model.qwen3 import Qwen3

FAMILY_CLASSES: dict[str, type[DecoderLM]] = {"gpt2": GPT2, "qwen3": Qwen3, "llama": Qwen3, "course": CourseGPT}


def build_model(config: ModelConfig) -> DecoderLM:
    """A model with freshly initialized weights for `config`."""
    return FAMILY_CLASSES[config.family](config)
