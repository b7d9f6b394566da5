"""Mixture of experts (model/moe.py): by-hand routing and balance loss, grouped dispatch equal to
the every-expert reference, one expert = the dense MLP, Mixtral / Qwen3-MoE equal to transformers.

Tolerances (fp32, two-sided): 1e-4 on logits and hidden states against transformers (as
test_equivalence.py); 1e-6 between the two dispatch paths (the same products summed in another
order); exact equality for one expert vs the dense MLP (the same operations on the same rows).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from glassformer.checkpoint import CheckpointError
from glassformer.errors import BadSetting
from glassformer.model import HOOK_NAMES, build_model, hook_names, preset
from glassformer.model.mlp import GeluMLP, SwiGLU
from glassformer.model.moe import MoE, balance_loss, every_expert, expert_load, moe_params
from glassformer.pretrained import load_pretrained
from hf_models import save_moe
from test_equivalence import compare


@pytest.fixture(autouse=True)
def small_work_on_one_thread():
    """Tiny matrices: splitting them across cores costs more than it saves (glassformer/threads.py)."""
    from glassformer.threads import one_thread

    with one_thread():
        yield


def moe_model(**changes):
    torch.manual_seed(0)
    base = dict(n_ctx=32, d_model=32, n_heads=2, mlp="swiglu", position="rope", norm="rmsnorm", mlp_bias=False,
                n_experts=4, experts_per_token=2, d_expert=24)
    return build_model(preset("tiny", **{**base, **changes})).eval()


# --- the layer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,bias", [("swiglu", False), ("swiglu", True), ("gelu", True), ("gelu_tanh", False)])
@pytest.mark.parametrize("renormalize", [True, False])
def test_one_expert_with_one_expert_per_token_is_exactly_the_dense_mlp(kind, bias, renormalize):
    torch.manual_seed(0)
    approximate = "tanh" if kind == "gelu_tanh" else "none"
    dense = SwiGLU(16, 40, bias) if kind == "swiglu" else GeluMLP(16, 40, bias, approximate)
    moe = MoE(kind, 16, 40, n_experts=1, experts_per_token=1, bias=bias, renormalize=renormalize)
    with torch.no_grad():
        for name in ("gate", "up", "down") if kind == "swiglu" else ("up", "down"):
            getattr(moe.experts, name).weight[0] = getattr(dense, name).weight
            if bias:
                getattr(moe.experts, name).bias[0] = getattr(dense, name).bias
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        ours, reference = moe(x), dense(x)
    assert reference.abs().max().item() > 1e-3, "degenerate test: the MLP outputs zeros"
    assert torch.equal(ours, reference), f"max abs diff {(ours - reference).abs().max():.3g}"


def test_one_expert_model_equals_the_dense_model():
    dense = moe_model(n_experts=0, d_mlp=24)
    moe = moe_model(n_experts=1, experts_per_token=1, d_expert=24)
    state = {k: v for k, v in dense.state_dict().items() if ".mlp." not in k}
    for i in range(dense.config.n_layers):
        for p in ("gate", "up", "down"):
            state[f"blocks.{i}.mlp.experts.{p}.weight"] = dense.state_dict()[f"blocks.{i}.mlp.{p}.weight"][None]
        state[f"blocks.{i}.mlp.router.weight"] = moe.state_dict()[f"blocks.{i}.mlp.router.weight"]
    moe.load_state_dict(state)
    ids = torch.randint(0, 65, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(moe(ids), dense(ids))


@pytest.mark.parametrize("k", [1, 2, 4, 8])
@pytest.mark.parametrize("renormalize", [True, False])
def test_grouped_dispatch_equals_every_expert_on_every_token(k, renormalize):
    torch.manual_seed(1)
    moe = MoE("swiglu", 24, 32, n_experts=8, experts_per_token=k, renormalize=renormalize)
    with torch.no_grad():
        moe.router.weight.normal_(std=0.5)       # decisive, varied routing
        x = torch.randn(2, 33, 24)
        grouped, reference = moe(x), every_expert(moe, x)
        used = torch.unique(moe.route(x)[0]).numel()
    assert used == 8, f"degenerate test: only {used} of 8 experts chosen"
    diff = (grouped - reference).abs()
    assert diff.max().item() <= 1e-6, f"max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"


def test_routing_by_hand():
    """D = 2, E = 3 experts, K = 2; router logits for x = (1, 0) are (2, 0, 1)."""
    moe = MoE("swiglu", 2, 4, n_experts=3, experts_per_token=2, renormalize=False)
    with torch.no_grad():
        moe.router.weight.copy_(torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))   # (D, E)
    x = torch.tensor([[[1.0, 0.0]]])
    experts, gates = moe.route(x)
    z = math.exp(2) + math.exp(0) + math.exp(1)
    p0, p2 = math.exp(2) / z, math.exp(1) / z                                      # 0.665, 0.245
    assert experts.tolist() == [[[0, 2]]]
    assert abs(gates[0, 0, 0].item() - p0) <= 1e-6 and abs(gates[0, 0, 1].item() - p2) <= 1e-6
    moe.renormalize = True                                                         # Mixtral: the kept two sum to 1
    _, gates = moe.route(x)
    assert abs(gates[0, 0, 0].item() - p0 / (p0 + p2)) <= 1e-6 and abs(gates[0, 0, 1].item() - p2 / (p0 + p2)) <= 1e-6


def test_moe_hook_points_are_documented_and_recorded_with_their_shapes():
    model = moe_model(n_experts=4, experts_per_token=3)
    ids = torch.randint(0, 65, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, trace = model.run_with_trace(ids)
    assert list(trace) == hook_names(2, has_pos_embed=False, moe=True)
    assert "blocks.0.mlp.pre" not in trace and "blocks.0.mlp.gates" in trace
    sizes = dict(B=2, T=9, S=9, D=32, H=2, Hkv=2, Dh=16, F=128, V=65, E=4, K=3)
    for pattern, shape, _ in HOOK_NAMES:
        if pattern == "embed.pos" or pattern.endswith(("mlp.pre", "mlp.post")):
            continue
        expected = tuple(sizes[d.strip()] for d in shape.strip("[]").split(","))
        assert tuple(trace[pattern.format(i=1)].shape) == expected, pattern
    gates = trace["blocks.1.mlp.gates"]
    assert (gates.sum(-1) - 1).abs().max().item() <= 1e-6             # renormalized by default
    probs = trace["blocks.1.mlp.router_logits"].softmax(-1)
    chosen = probs.gather(-1, trace["blocks.1.mlp.experts"])
    assert (chosen / chosen.sum(-1, keepdim=True) - gates).abs().max().item() <= 1e-6


def test_a_hook_can_reroute_tokens():
    """Forcing every token to expert 0 with gate 1 equals running expert 0 alone."""
    model = moe_model(n_experts=4, experts_per_token=2, n_layers=1)
    ids = torch.randint(0, 65, (1, 10), generator=torch.Generator().manual_seed(0))
    zero = lambda t, name: torch.zeros_like(t)                                    # noqa: E731
    first = lambda t, name: torch.cat([torch.ones_like(t[..., :1]), torch.zeros_like(t[..., 1:])], -1)  # noqa: E731
    with torch.no_grad(), model.hooks({"blocks.0.mlp.experts": zero, "blocks.0.mlp.gates": first}):
        _, trace = model.run_with_trace(ids, names=["blocks.0.mlp_in", "blocks.0.mlp_out"])
    mlp = model.blocks[0].mlp
    with torch.no_grad():
        alone = mlp.experts.run(0, trace["blocks.0.mlp_in"].reshape(-1, 32)).view(1, 10, 32)
    assert (trace["blocks.0.mlp_out"] - alone).abs().max().item() <= 1e-6


def test_parameter_counts_match_the_docstring_and_the_model():
    assert moe_params(128, 172, 8, 2) == (529_408, 133_120)
    layer = MoE("swiglu", 128, 172, 8, 2)
    assert sum(p.numel() for p in layer.parameters()) == 529_408
    assert 3 * 128 * 344 == 133_120 - 128 * 8            # the dense twin: the same active expert weights


def test_config_refuses_impossible_routing():
    with pytest.raises(BadSetting, match="experts_per_token"):
        preset("tiny", n_experts=4, experts_per_token=5)
    with pytest.raises(BadSetting, match="n_experts"):
        preset("tiny", n_experts=-1)
    assert preset("tiny", n_experts=4).d_expert == preset("tiny").d_mlp


# --- load balancing ----------------------------------------------------------------------------

def test_balance_loss_is_one_when_perfectly_balanced():
    """Uniform router (P_i = 1/E) and each expert chosen equally often (f_i = 1/E): E · E · 1/E² = 1."""
    E = 4
    experts = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])      # every expert in 2 of the 8 slots
    assert expert_load(experts, E).tolist() == [0.25] * 4
    assert abs(balance_loss(torch.zeros(4, E), experts).item() - 1.0) <= 1e-6


def test_balance_loss_by_hand_when_unbalanced():
    """E = 2, both tokens to expert 0 (f = (1, 0)), router probabilities (3/4, 1/4) each: 2 · 3/4 = 1.5.
    Everything on one expert with certainty gives E."""
    logits = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])
    assert abs(balance_loss(logits, torch.tensor([[0], [0]])).item() - 1.5) <= 1e-6
    certain = torch.tensor([[30.0, 0, 0, 0]] * 5)
    assert abs(balance_loss(certain, torch.zeros(5, 1, dtype=torch.long)).item() - 4.0) <= 1e-6


@pytest.mark.parametrize("k", [1, 2, 3])
def test_balance_loss_is_transformers_divided_by_k(k):
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    logits = torch.randn(40, 6, generator=torch.Generator().manual_seed(k))
    chosen = logits.softmax(-1).topk(k, -1).indices
    theirs = load_balancing_loss_func((logits,), num_experts=6, top_k=k)
    assert abs(balance_loss(logits, chosen).item() * k - theirs.item()) <= 1e-5


def test_training_adds_the_balance_loss_and_logs_expert_load(tmp_path):
    from glassformer.train import train, train_preset

    cfg = train_preset("tiny", max_steps=6, batch_size=4, eval_interval=6, checkpoint_interval=6, log_interval=2,
                       eval_batches=1, sample_tokens=5, warmup_steps=1, n_ctx=16, d_model=16, n_heads=2,
                       n_layers=2, n_experts=4, experts_per_token=2, d_expert=16, dtype="fp32")
    train(cfg, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "expert_load" in r]
    assert len(logged) == 3
    for row in logged:
        assert len(row["expert_load"]) == 2 and all(len(layer) == 4 for layer in row["expert_load"])
        assert all(abs(sum(layer) - 1) <= 1e-3 for layer in row["expert_load"])
        assert 0.0 < row["balance_loss"] <= 4.0 + 1e-4                  # E·Σ f_i·P_i lies in (0, E]


def test_balance_loss_gradient_reaches_the_router():
    """The training loop's term: with only the balance loss, the router gets a gradient, the experts none."""
    from glassformer.model.moe import routing_recorded, routing_summary

    model = moe_model().train()
    ids = torch.randint(0, 65, (2, 12), generator=torch.Generator().manual_seed(0))
    with routing_recorded(model) as routing:
        model(ids)
    balance, load = routing_summary(routing)
    balance.backward()
    router = model.blocks[0].mlp.router.weight.grad
    assert router is not None and router.abs().max().item() > 0
    assert model.blocks[-1].mlp.experts.up.weight.grad is None     # the last layer's experts feed no router
    assert len(load) == 2 and abs(sum(load[0]) - 1) <= 1e-3


# --- measured on a model: load over a text, parameter and FLOP counts ------------------------------

def test_load_over_a_text_agrees_with_the_training_loops_per_batch_measure():
    from glassformer.analysis.experts import measure_load
    from glassformer.model.moe import routing_recorded

    model = moe_model()                                                # 2 layers, E = 4, K = 2, context 32
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.router.weight.normal_(std=0.5)                   # decisive, uneven routing
    ids = torch.randint(0, 65, (3 * 32 + 1,), generator=torch.Generator().manual_seed(0))
    load = measure_load(model, ids, batch_size=3)                      # exactly one batch of 3 windows
    with torch.no_grad(), routing_recorded(model) as seen:
        model(ids[:96].view(3, 32))
    assert load.tokens == 96
    for i in range(2):
        chosen, logits = seen[f"blocks.{i}.mlp.experts"], seen[f"blocks.{i}.mlp.router_logits"]
        slots = expert_load(chosen, 4)
        assert max(abs(a - b) for a, b in zip(load.slot_share[i], slots.tolist())) <= 1e-6
        assert abs(sum(load.token_share[i]) - 2) <= 1e-5                # each token counted at its K = 2 experts
        assert abs(load.balance[i] - balance_loss(logits, chosen).item()) <= 1e-5
        expert, share = load.busiest[i]
        assert share == max(load.token_share[i]) and 0.5 < share <= 1   # uneven: above the even 2/4


def test_active_parameters_count_k_of_e_experts():
    from glassformer.analysis.scaling import forward_flops_per_token, parameter_counts

    moe, dense = moe_model(n_experts=4, experts_per_token=2, d_expert=24), moe_model(n_experts=0, d_mlp=48)
    total, active = moe_params(32, 24, 4, 2)                            # one layer
    m, d = parameter_counts(moe), parameter_counts(dense)
    assert m.total - m.active == 2 * (total - active)
    assert m.active - d.active == 2 * 32 * 4                            # the twin differs only by the routers
    assert m.non_embedding == m.total - 65 * 32 and m.active_non_embedding == m.active - 65 * 32
    assert forward_flops_per_token(moe) - forward_flops_per_token(dense) == 2 * 2 * 32 * 4


# --- the command line ----------------------------------------------------------------------------

def test_glassformer_train_trains_a_mixture_of_experts_from_its_flags(tmp_path, capsys):
    """Four steps of a course-family MoE from the command line (bad values: test_user_errors.py)."""
    from glassformer import cli
    from glassformer.checkpoint import load_model_folder
    from glassformer.data import tinyshakespeare_bytes

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(tinyshakespeare_bytes()[:20_000])
    code = cli.main(["train", "--preset", "course", "--out", str(tmp_path / "run"), "--corpus", str(corpus),
                     "--no-progress", "--max-steps", "4", "--eval-interval", "4", "--log-interval", "2",
                     "--dtype", "fp32", "--n-ctx", "16", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
                     "--d-mlp", "24", "--n-experts", "4", "--experts-per-token", "2", "--d-expert", "12",
                     "--balance-weight", "0.05"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "training the mixture of experts eagerly" in err          # the course preset compiles; a MoE does not
    model, _, card = load_model_folder(tmp_path / "run")
    c = model.config
    assert (c.n_experts, c.experts_per_token, c.d_expert, c.d_mlp, c.mlp) == (4, 2, 12, 24, "swiglu")
    recipe = card["preset_config"]
    assert (recipe["balance_weight"], recipe["compile"], recipe["max_steps"]) == (0.05, False, 4)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [len(r["expert_load"]) for r in rows if "expert_load" in r] == [1, 1]     # steps 2 and 4, one layer
    assert all(len(r["expert_load"][0]) == 4 for r in rows if "expert_load" in r)


@pytest.mark.parametrize("flags, k", [(["--n-experts", "1"], 1), (["--n-experts", "8"], 2),
                                      (["--n-experts", "8", "--experts-per-token", "3"], 3)])
def test_experts_per_token_defaults_to_two_or_to_the_one_expert(flags, k):
    import argparse

    from glassformer.train import OVERRIDES, add_arguments, moe_overrides, train_preset

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", *flags])
    given = {name: v for name, v in vars(args).items() if name in OVERRIDES and v is not None}
    cfg = train_preset("tiny", **given, **moe_overrides(args, train_preset("tiny")))
    assert cfg.model.experts_per_token == k


# --- real checkpoints ---------------------------------------------------------------------------

MOE_SHAPES = {
    "mixtral-gqa-top2-of-4": dict(model_type="mixtral", heads=4, kv_heads=2, experts=4, top_k=2),
    "mixtral-mha-top1-of-8-tied": dict(model_type="mixtral", heads=4, kv_heads=4, experts=8, top_k=1, tie=True),
    "mixtral-mqa-top4-of-8": dict(model_type="mixtral", heads=3, kv_heads=1, hidden=48, experts=8, top_k=4),
    "qwen3moe-gqa-top2-renorm": dict(model_type="qwen3_moe", experts=4, top_k=2, norm_topk_prob=True),
    "qwen3moe-gqa-top2-no-renorm": dict(model_type="qwen3_moe", experts=4, top_k=2, norm_topk_prob=False),
    "qwen3moe-top4-of-8-no-renorm-wide-heads": dict(model_type="qwen3_moe", heads=8, kv_heads=2, head_dim=16,
                                                    experts=8, top_k=4, norm_topk_prob=False),
    "qwen3moe-top1-of-8-no-renorm": dict(model_type="qwen3_moe", experts=8, top_k=1, norm_topk_prob=False),
}


@pytest.mark.parametrize("shape", MOE_SHAPES.values(), ids=MOE_SHAPES.keys())
def test_moe_checkpoints_match_transformers(tmp_path, shape):
    hf_model = save_moe(tmp_path, vocab_size=101, **shape)
    ours, _ = load_pretrained(tmp_path)
    c = ours.config
    assert (c.family, c.n_experts, c.experts_per_token) == (shape["model_type"], shape["experts"], shape["top_k"])
    assert c.moe_renormalize == shape.get("norm_topk_prob", True)
    ids = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, trace = ours.run_with_trace(ids, names="blocks.*.mlp.experts")
    used = [torch.unique(t).numel() for t in trace.values()]
    assert min(used) > shape["top_k"], f"degenerate test: every token goes to the same experts ({used} used per layer)"
    compare(hf_model, tmp_path, 101)   # logits and every hidden state within 1e-4; 32 greedy tokens identical


@pytest.mark.parametrize("dense,layers", [(dict(mlp_only_layers=[1]), r"\[1\]"),
                                          (dict(decoder_sparse_step=2), r"\[0\]")],
                         ids=["mlp_only_layers", "decoder_sparse_step"])
def test_qwen3_moe_with_dense_layers_is_refused_by_name(tmp_path, dense, layers):
    """Qwen3-MoE can put a dense MLP in some layers; glassformer refuses such a checkpoint, naming the layers."""
    save_moe(tmp_path, model_type="qwen3_moe", **dense)
    with pytest.raises(CheckpointError, match=rf"dense MLPs in layers {layers}.*mlp_only_layers / decoder_sparse_step"):
        load_pretrained(tmp_path)
