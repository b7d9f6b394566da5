"""One Transformer block taken apart: the values one token's vector takes inside it.

Chapter 6 walks a vector through a block (model/block.py) stage by stage. Everything here
reads tensors the model already recorded (`model.run_with_trace`) or runs the library's own
modules (model/norm.py, model/mlp.py) on small inputs; nothing re-implements the block.

    >>> import torch
    >>> from glassformer.model import preset
    >>> from glassformer.model.decoder import DecoderLM
    >>> model = DecoderLM(preset("tiny"))
    >>> _, trace = model.run_with_trace(torch.tensor([[1, 2, 3]]), "blocks.0.*")
    >>> [s.stage.hook for s in walk_block(trace, layer=0, pos=2, pre_norm=True)][:3]
    ['resid_pre', 'attn_in', 'attn_out']

Shapes: B batch, T positions, D model width, F MLP hidden width.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from glassformer.model.hooks import Trace
from glassformer.model.mlp import GeluMLP, SwiGLU
from glassformer.model.norm import LayerNorm, RMSNorm


@dataclass(frozen=True)
class Stage:
    hook: str          # the hook name inside the block: "blocks.{i}." + hook
    title: str         # what happened to the vector at this stage
    marker: str        # text of the line of Block.forward (or the MLP's forward) that made it
    in_mlp: bool = False  # the line is in the MLP's forward, not in Block.forward
    short: str = ""    # a few words for a path of all the stages ("norm 1", "MLP up"); the title when empty

    @property
    def label(self) -> str:
        return self.short or self.title


# Pre-norm (GPT-2, Llama, Qwen, the course model): x = x + attn(norm1(x)); x = x + mlp(norm2(x)).
PRE_NORM_STAGES = [
    Stage("resid_pre", "the stream entering the block", "x = self.hook_resid_pre(x)", short="stream in"),
    Stage("attn_in", "norm 1: the stream, normalized", "self.hook_attn_in(self.norm1(x))", short="norm 1"),
    Stage("attn_out", "attention's output", "self.hook_attn_out(self.attn(self.hook_attn_in(self.norm1(x))",
          short="attention"),
    Stage("resid_mid", "add: stream + attention", "mid = self.hook_resid_mid(x + self._drop(attn_out))",
          short="+ attention"),
    Stage("mlp_in", "norm 2: the new stream, normalized", "self.hook_mlp_in(self.norm2(mid))", short="norm 2"),
    Stage("mlp.pre", "MLP widening (D → F)", "self.hook_pre(", in_mlp=True, short="MLP up"),
    Stage("mlp.post", "MLP activation", "self.hook_post(", in_mlp=True, short="activation"),
    Stage("mlp_out", "MLP down-projection (F → D)", "self.hook_mlp_out(self.mlp(self.hook_mlp_in(self.norm2(mid))))",
          short="MLP down"),
    Stage("resid_post", "add: stream + MLP, leaving the block",
          "return self.hook_resid_post(mid + self._drop(mlp_out))", short="+ MLP"),
]

# Post-norm (the 2017 Transformer): x = norm1(x + attn(x)); x = norm2(x + mlp(x)).
POST_NORM_STAGES = [
    Stage("resid_pre", "the stream entering the block", "x = self.hook_resid_pre(x)", short="stream in"),
    Stage("attn_in", "attention's input: the raw stream", "self.hook_attn_in(x)", short="attention's input"),
    Stage("attn_out", "attention's output", "attn_out = self.hook_attn_out(self.attn(self.hook_attn_in(x)",
          short="attention"),
    Stage("resid_mid", "add, then norm 1", "mid = self.hook_resid_mid(self.norm1(x + self._drop(attn_out)))",
          short="+ attention, norm 1"),
    Stage("mlp_in", "the MLP's input: the stream itself", "self.hook_mlp_in(mid)", short="MLP's input"),
    Stage("mlp.pre", "MLP widening (D → F)", "self.hook_pre(", in_mlp=True, short="MLP up"),
    Stage("mlp.post", "MLP activation", "self.hook_post(", in_mlp=True, short="activation"),
    Stage("mlp_out", "MLP down-projection (F → D)", "mlp_out = self.hook_mlp_out(self.mlp(self.hook_mlp_in(mid)))",
          short="MLP down"),
    Stage("resid_post", "add, then norm 2, leaving the block", "return self.hook_resid_post(self.norm2(",
          short="+ MLP, norm 2"),
]


def block_stages(pre_norm: bool) -> list[Stage]:
    """The stages of a block in forward order, with the line of code that makes each."""
    return PRE_NORM_STAGES if pre_norm else POST_NORM_STAGES


@dataclass(frozen=True)
class StageValue:
    stage: Stage
    vector: torch.Tensor   # (D,) or (F,): the chosen token's values at this stage (fp32)
    norm: float            # Euclidean length of `vector`
    shape: tuple[int, ...]  # the recorded tensor's full shape, (B, T, D) or (B, T, F)


def walk_block(trace: Trace, layer: int, pos: int, pre_norm: bool) -> list[StageValue]:
    """The vector of the token at position `pos` at every stage of block `layer`, read from a trace
    that recorded "blocks.{layer}.*" (run_with_trace). Batch row 0."""
    out = []
    for stage in block_stages(pre_norm):
        t = trace[f"blocks.{layer}.{stage.hook}"]                   # (B, T, D) or (B, T, F)
        v = t[0, pos].float()                                       # (D,) or (F,)
        out.append(StageValue(stage, v, float(v.norm()), tuple(t.shape)))
    return out


def residual_shares(trace: Trace, n_layers: int) -> list[dict]:
    """How much each sub-layer adds to the stream, per layer: ‖update‖ / ‖stream it is added to‖,
    averaged over positions (batch row 0). Needs "blocks.*.resid_pre", "attn_out", "resid_mid", "mlp_out".

    A share of 0.1 means the sub-layer's output is a tenth as long as the stream it joins.
    Rows: {"layer", "sublayer": "attention" | "MLP", "share"}.
    """
    rows = []
    for i in range(n_layers):
        for name, update, stream in (("attention", "attn_out", "resid_pre"), ("MLP", "mlp_out", "resid_mid")):
            u = trace[f"blocks.{i}.{update}"][0].float()            # (T, D)
            s = trace[f"blocks.{i}.{stream}"][0].float()            # (T, D)
            share = (u.norm(dim=-1) / s.norm(dim=-1).clamp_min(1e-12)).mean()
            rows.append({"layer": i, "sublayer": name, "share": float(share)})
    return rows


def vector_stats(x: torch.Tensor) -> dict[str, float]:
    """Mean, variance (population, as LayerNorm uses) and root mean square of a vector x (D,)."""
    x = x.double()
    return {"mean": float(x.mean()), "variance": float(x.var(unbiased=False)), "rms": float(x.pow(2).mean().sqrt())}


def compare_norms(x: torch.Tensor, eps: float = 1e-5) -> dict[str, tuple[torch.Tensor, dict[str, float]]]:
    """x (D,) through the library's LayerNorm and RMSNorm, both fresh (weight 1, bias 0: no learned
    scale yet), so the difference is the formula alone. name -> (output (D,), its vector_stats)."""
    x = x.float()
    D = x.shape[-1]
    with torch.no_grad():
        results = {"before": x, "LayerNorm": LayerNorm(D, eps)(x), "RMSNorm": RMSNorm(D, eps)(x)}
    return {name: (v, vector_stats(v)) for name, v in results.items()}


def activation_curves(xs: Sequence[float]) -> dict[str, list[float]]:
    """The MLP activations as functions of one number, computed by the library's own MLP modules
    with one hidden unit and every weight set to 1 (so the module's output IS the hidden unit):

    GELU: GeluMLP(1, 1) -> gelu(x); GELU (tanh): GPT-2's approximation;
    SwiGLU: SwiGLU(2, 1) on the input (x, 1), gate reading x and up reading the 1 -> silu(x) * 1.
    """
    x = torch.tensor(list(xs), dtype=torch.float32)
    curves = {}
    with torch.no_grad():
        for name, approximate in (("GELU", "none"), ("GELU (tanh)", "tanh")):
            mlp = GeluMLP(1, 1, bias=False, approximate=approximate)
            mlp.up.weight.fill_(1.0)
            mlp.down.weight.fill_(1.0)
            curves[name] = mlp(x[:, None])[:, 0].tolist()
        glu = SwiGLU(2, 1)
        glu.gate.weight.copy_(torch.tensor([[1.0], [0.0]]))   # (in=2, out=1): gate sees x
        glu.up.weight.copy_(torch.tensor([[0.0], [1.0]]))     # up sees the constant 1
        glu.down.weight.fill_(1.0)
        curves["SwiGLU gate (up = 1)"] = glu(torch.stack([x, torch.ones_like(x)], dim=-1))[:, 0].tolist()
    return curves


def mlp_parameter_counts(d_model: int) -> dict[str, tuple[int, int]]:
    """Weights of a GPT-2 MLP (F = 4D, two matrices) and of a SwiGLU MLP (three matrices) with
    F = 8D/3 rounded up to a multiple of 8, built by the library: name -> (F, parameter count)."""
    f_swiglu = 8 * math.ceil(8 * d_model / 3 / 8)
    counts = {}
    for name, module, f in (("GELU, F = 4D", GeluMLP(d_model, 4 * d_model, bias=False), 4 * d_model),
                            ("SwiGLU, F ≈ 8D/3", SwiGLU(d_model, f_swiglu), f_swiglu)):
        counts[name] = (f, sum(p.numel() for p in module.parameters()))
    return counts


@dataclass(frozen=True)
class DropoutCheck:
    rate: float
    train_vs_train: float   # max |difference| of the logits between two runs in training mode
    eval_vs_eval: float     # the same in evaluation mode (0: deterministic)
    train_vs_eval: float    # max |difference| between a training-mode run and an evaluation-mode run


def dropout_check(model: torch.nn.Module, ids: torch.Tensor, rate: float | None = None, seed: int = 0) -> DropoutCheck:
    """Run a copy of `model` on ids (B, T) twice in training mode and twice in evaluation mode.

    A copy, so the shared model is never switched to training mode. rate: the residual dropout
    probability to use (default: the model's own `config.dropout`). Dropout zeroes each element
    of a sub-layer's output with probability `rate` during training and scales the rest by
    1 / (1 - rate); in evaluation mode it does nothing.
    """
    twin = copy.deepcopy(model)
    rate = model.config.dropout if rate is None else rate
    for block in twin.blocks:
        block.dropout = rate
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            twin.train()
            t1, t2 = twin(ids).float(), twin(ids).float()                 # (B, T, V) each
            twin.eval()
            e1, e2 = twin(ids).float(), twin(ids).float()
    finally:
        torch.random.set_rng_state(gen_state)
    diff = lambda a, b: float((a - b).abs().max())  # noqa: E731
    return DropoutCheck(rate, diff(t1, t2), diff(e1, e2), diff(t1, e1))
