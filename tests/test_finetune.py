"""Fine-tuning: the loss mask, the chat formats, LoRA, and the loop (learns, resumes, exports, refuses bad data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from glassformer import finetune as ft
from glassformer.chat import PlainFormat, TemplateFormat, find_chat_template
from glassformer.checkpoint import load_model_folder
from glassformer.lora import LoRALinear, add_lora, merge_lora, trainable_parameters
from glassformer.model import build_model, preset
from glassformer.registry import COURSE_MODEL_DIR, LoadedModel, load_model
from glassformer.tokenizers.char import CharTokenizer

COURSE_CHARS = CharTokenizer.load(COURSE_MODEL_DIR / "tokenizer.json")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny: on a 2-core machine that others share, two threads measured up to 40x slower."""
    from glassformer.threads import one_thread

    with one_thread():
        yield
HI = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]


def test_every_plain_format_marker_is_one_of_the_course_models_65_characters():
    assert COURSE_CHARS.vocab_size == 65
    assert PlainFormat().markers() == "".join(sorted(set("&system: \n&user: \n&bot: \n$")))
    assert COURSE_CHARS.unknown(PlainFormat().markers()) == []
    assert ft.chat_format(COURSE_CHARS).name == "plain"
    assert ft.end_token(PlainFormat(), COURSE_CHARS) == COURSE_CHARS.ids["$"]


def test_a_vocabulary_without_a_marker_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"lacks the chat format's markers \['&'"):
        ft.chat_format(CharTokenizer(sorted(set(COURSE_CHARS.chars) - {"&"})))


def test_the_loss_mask_covers_exactly_the_response_characters():
    ids, learn = ft.encode_example(PlainFormat(), COURSE_CHARS, HI)
    text = "&user: Hi\n&bot: Yo$"
    assert COURSE_CHARS.decode(ids) == text
    assert learn == [False] * (len(text) - 3) + [True] * 3          # "Y", "o" and the end marker "$"
    _, everything = ft.encode_example(PlainFormat(), COURSE_CHARS, HI, loss_on="all")
    assert everything == [True] * len(text)


def test_a_batch_predicts_each_learned_character_from_the_one_before_and_pads_with_ignore():
    ids, learn = ft.encode_example(PlainFormat(), COURSE_CHARS, HI)
    short = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}]
    ids2, learn2 = ft.encode_example(PlainFormat(), COURSE_CHARS, short)
    data = ft.Encoded([torch.tensor(ids), torch.tensor(ids2)], [torch.tensor(learn), torch.tensor(learn2)])
    x, y = ft.make_batch(data, [0, 1])
    assert x.shape == y.shape == (2, len(ids) - 1)
    assert x[0].tolist() == ids[:-1]
    assert y[0].tolist() == [-100] * (len(ids) - 4) + COURSE_CHARS.encode("Yo$")
    n2 = len(ids2) - 1                                                  # "&user: A\n&bot: B$": 16 inputs
    assert y[1].tolist() == [-100] * (n2 - 2) + COURSE_CHARS.encode("B$") + [-100] * (len(ids) - 1 - n2)


def test_every_assistant_turn_of_a_conversation_is_learned_and_no_other():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A"},
                {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"},
                {"role": "assistant", "content": "D"}]
    segments = PlainFormat().segments(messages)
    assert segments == [("&system: Be brief.\n&user: A\n&bot: ", False), ("B$", True),
                        ("\n&user: C\n&bot: ", False), ("D$", True)]
    assert PlainFormat().prompt(messages[:2]) == "&system: Be brief.\n&user: A\n&bot: "


def test_the_plain_format_refuses_its_end_marker_inside_a_text():
    with pytest.raises(ValueError, match="reserves"):
        PlainFormat().segments([{"role": "user", "content": "5$"}, {"role": "assistant", "content": "x"}])


CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_pretrained_folder(folder: Path) -> Path:
    """A byte-level BPE tokenizer.json with ChatML's two special tokens, and a tokenizer_config.json
    carrying a ChatML chat template (as Qwen3's files do), made here: no network."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["user assistant Hi Yo who speaks ROMEO"] * 10, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML, "eos_token": "<|im_end|>"}))
    return folder


def test_a_pretrained_tokenizers_chat_template_is_found_and_its_reply_alone_is_learned(tmp_path):
    from glassformer.tokenizers.pretrained import PretrainedTokenizer

    folder = tiny_pretrained_folder(tmp_path / "tok")
    tokenizer = PretrainedTokenizer(folder / "tokenizer.json")
    fmt = ft.chat_format(tokenizer, folder)
    assert isinstance(fmt, TemplateFormat) and fmt.end == "<|im_end|>"
    assert fmt.prompt(HI[:1]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids, learn = ft.encode_example(fmt, tokenizer, HI)
    assert tokenizer.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
    assert tokenizer.decode([i for i, l in zip(ids, learn) if l]) == "Yo<|im_end|>\n"
    assert learn == sorted(learn)                      # the learned tokens are one run at the end
    assert fmt.reply("Yo<|im_end|>\nmore") == ("Yo", True)
    assert find_chat_template(tmp_path) is None        # no template: the plain format is used
    assert ft.chat_format(tokenizer, tmp_path).name == "plain"


def course_sized(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(preset("course", dropout=0.0)).eval()


def test_lora_with_b_at_zero_is_exactly_the_base_model():
    model = course_sized()
    ids = torch.randint(0, 65, (2, 20))
    base = model(ids)
    add_lora(model, rank=4)
    assert torch.equal(model(ids), base)


def test_merged_lora_gives_the_logits_of_the_adapter_model_and_the_base_shape():
    model = course_sized()
    names = set(model.state_dict())
    add_lora(model, rank=4, alpha=8.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.b.normal_(std=0.05)
    ids = torch.randint(0, 65, (2, 20))
    adapted = model(ids)
    merge_lora(model)
    merged = model(ids)
    diff = (merged - adapted).abs()
    assert diff.max() <= 1e-4, f"max diff {diff.max():.2e}, mean {diff.mean():.2e}"
    assert (adapted - course_sized()(ids)).abs().max() > 1e-2   # the adapters did change the model
    assert set(model.state_dict()) == names and trainable_parameters(model) == model.num_params()


def test_lora_trainable_parameter_count_by_hand():
    model = course_sized()
    # Each course block: qkv 128 -> 3 * 128, out 128 -> 128, SwiGLU gate and up 128 -> 344, down 344 -> 128;
    # an adapter of rank r on an (in, out) weight has r * (in + out) parameters. Four blocks.
    per_block = (128 + 384) + (128 + 128) + 2 * (128 + 344) + (344 + 128)
    assert add_lora(model, rank=8) == 4 * 8 * per_block == 69_888
    attention_only = course_sized()
    assert add_lora(attention_only, rank=2, targets=("qkv", "out")) == 4 * 2 * (512 + 256)
    with pytest.raises(ValueError, match="LoRA targets"):
        add_lora(course_sized(), rank=2, targets=("q_proj",))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


NAMES = ["ROMEO", "JULIET", "HAMLET", "LEAR"]


def speaker_rows(n: int, offset: int = 0) -> list[dict]:
    """A task a two-layer model learns in seconds: copy the name after "Who? "."""
    return [{"task": "who", "prompt": f"Who? {NAMES[(i + offset) % 4]}:", "response": NAMES[(i + offset) % 4]}
            for i in range(n)]


def tiny_loaded() -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel("tiny-test", build_model(preset("tiny")).eval(), COURSE_CHARS, {})


FAST = dict(batch_size=8, max_steps=60, lr=1e-2, warmup_steps=5, eval_interval=30, checkpoint_interval=30,
            log_interval=1, dtype="fp32")


def test_finetuning_learns_a_task_and_the_folder_loads_like_any_model(tmp_path):
    loaded = tiny_loaded()
    train_file = write_jsonl(tmp_path / "train.jsonl", speaker_rows(40))
    test_file = write_jsonl(tmp_path / "test.jsonl", speaker_rows(8, offset=1))
    cfg = ft.FinetuneConfig(ft.default_train_config(loaded.model.config, **FAST), eval_limit=8)
    summary = ft.finetune(cfg, loaded, train_file, tmp_path / "run", held_out_file=test_file, progress=False)
    assert summary["before"]["exact_match"] == 0.0
    assert summary["after"]["exact_match"] == 1.0 and summary["after"]["format_ok"] == 1.0
    assert summary["after"]["by_task"]["who"]["n"] == 8
    again = load_model(str(tmp_path / "run"))
    assert again.card["kind"] == "finetuned" and again.card["after"] == summary["after"]
    assert ft.evaluate(again.model, again.tokenizer, ft.read_examples(test_file))["exact_match"] == 1.0
    losses = [r["val_loss"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
              if "val_loss" in r]
    assert losses[-1] < losses[0]


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    loaded = tiny_loaded()
    train_file = write_jsonl(tmp_path / "train.jsonl", speaker_rows(40))
    cfg = ft.FinetuneConfig(ft.default_train_config(loaded.model.config, **{**FAST, "max_steps": 20,
                                                                            "checkpoint_interval": 10}),
                            lora_rank=2)
    ft.finetune(cfg, loaded, train_file, tmp_path / "straight", progress=False)

    real = ft.save_checkpoint

    def interrupt_after_step_10(run, state, rng=None):
        real(run, state, rng)
        if state.step == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(ft, "save_checkpoint", interrupt_after_step_10)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(cfg, loaded, train_file, tmp_path / "broken", progress=False)
    monkeypatch.setattr(ft, "save_checkpoint", real)
    ft.finetune(cfg, loaded, train_file, tmp_path / "broken", progress=False, resume=True)

    def losses(folder):
        rows = map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
        return [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]

    assert losses(tmp_path / "broken") == losses(tmp_path / "straight") and len(losses(tmp_path / "straight")) == 20
    a, b = load_model_folder(tmp_path / "straight")[0], load_model_folder(tmp_path / "broken")[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_lora_moves_only_the_adapted_weights_and_exports_the_base_shape(tmp_path):
    loaded = tiny_loaded()
    train_file = write_jsonl(tmp_path / "train.jsonl", speaker_rows(40))
    cfg = ft.FinetuneConfig(ft.default_train_config(loaded.model.config, **{**FAST, "max_steps": 10}), lora_rank=2,
                            lora_targets=("qkv", "out"))
    summary = ft.finetune(cfg, loaded, train_file, tmp_path / "lora", progress=False)
    assert summary["trainable_parameters"] == 2 * 2 * ((64 + 192) + (64 + 64))  # 2 blocks, d=64
    tuned, _, _ = load_model_folder(tmp_path / "lora")
    base = loaded.model.state_dict()
    for name, value in tuned.state_dict().items():
        moved = not torch.equal(value, base[name])
        assert moved == name.endswith(("attn.qkv.weight", "attn.out.weight")), name


def test_bad_data_is_one_line_error_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Hi", "response": "Yo"}) + "\n" + "{not json\n")
    assert ft.main(["--data", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}:2: not valid JSON" in err
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "Caf\u00e9?", "response": "Yes"}])
    assert ft.main(["--data", str(odd), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "training example 1 has characters the model does not know: '\u00e9'" in capsys.readouterr().err
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(ValueError, match=r"wrong.jsonl:1: the last message must be the assistant's"):
        ft.read_examples(wrong)


def test_glassformer_finetune_is_a_subcommand_with_the_train_commands_controls():
    from glassformer.cli import build_parser, cmd_finetune

    args = build_parser().parse_args(["finetune", "--from", "runs/x", "--lora", "4", "--loss-on", "all",
                                      "--time-budget", "60", "--resume", "--dtype", "fp32"])
    assert args.fn is cmd_finetune
    assert (args.base, args.lora, args.loss_on, args.time_budget, args.resume, args.dtype) == \
        ("runs/x", 4, "all", 60.0, True, "fp32")


def test_the_shipped_instruction_set_is_checkable_fits_the_course_model_and_holds_out_its_test_lines():
    import re

    card = json.loads((ft.INSTRUCTIONS_DIR / "card.json").read_text())
    train = ft.read_examples(ft.INSTRUCTIONS_DIR / "train.jsonl")
    test = ft.read_examples(ft.INSTRUCTIONS_DIR / "test.jsonl")
    assert (len(train), len(test)) == (card["train_examples"], card["test_examples"]) == (900, 300)
    assert {e.task for e in train} == {e.task for e in test} == set(card["tasks"])
    assert not {e.messages[0]["content"] for e in train} & {e.messages[0]["content"] for e in test}
    words = re.compile(r"[A-Za-z']+")
    rules = {"First word: ": lambda line: words.findall(line)[0], "Last word: ": lambda line: words.findall(line)[-1],
             "Question? ": lambda line: "yes" if line.rstrip().endswith("?") else "no"}
    for ex in train + test:
        prompt = ex.messages[0]["content"]
        head = next(h for h in rules if prompt.startswith(h))
        assert ex.answer == rules[head](prompt[len(head):]), prompt     # the answer, re-derived by its rule
    encoded = ft.encode_all(PlainFormat(), COURSE_CHARS, train + test, 256, "response", "shipped")
    assert encoded.dropped == 0 and len(encoded.ids) == 1200          # every character known, every one fits


def test_a_model_with_a_chat_template_is_trained_in_it_and_its_folder_keeps_template_and_end_token(tmp_path):
    from glassformer.tokenizers.pretrained import PretrainedTokenizer

    folder = tiny_pretrained_folder(tmp_path / "base")
    tokenizer = PretrainedTokenizer(folder / "tokenizer.json")
    torch.manual_seed(0)
    model = build_model(preset("tiny", vocab_size=tokenizer.vocab_size)).eval()
    loaded = LoadedModel("tiny-bpe", model, tokenizer, {})
    train_file = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Hi", "response": "Yo"}] * 8)
    cfg = ft.FinetuneConfig(ft.default_train_config(model.config, **{**FAST, "max_steps": 30}))
    summary = ft.finetune(cfg, loaded, train_file, tmp_path / "run", held_out_file=train_file, progress=False)
    again = load_model(str(tmp_path / "run"))
    assert again.card["chat_format"] == "template" and summary["after"]["exact_match"] == 1.0
    assert again.tokenizer.eos_id == tokenizer.hf.token_to_id("<|im_end|>")
    fmt = ft.chat_format(again.tokenizer, tmp_path / "run")
    assert isinstance(fmt, TemplateFormat) and ft.evaluate(again.model, again.tokenizer, ft.read_examples(train_file),
                                                            fmt)["exact_match"] == 1.0


def test_dpo_at_the_start_is_log_2_with_no_margin_no_kl_and_its_log_probs_match_token_logprobs(tmp_path):
    import math

    from glassformer import dpo
    from glassformer.generate import token_logprobs

    pairs_file = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": f"Who? {n}:", "chosen": n, "rejected": "LEAR"}
                                                        for n in NAMES[:3]])
    pairs = dpo.read_pairs(pairs_file)
    loaded = tiny_loaded()
    encoded = dpo.encode_pairs(PlainFormat(), COURSE_CHARS, pairs, 64)
    by_hand = sum(token_logprobs(loaded.model, COURSE_CHARS.encode("&user: Who? ROMEO:\n&bot: "),
                                 COURSE_CHARS.encode("ROMEO$")))
    ours = dpo.reply_logprobs(loaded.model, encoded.chosen, [0])[0].item()
    assert abs(ours - by_hand) <= 1e-4, (ours, by_hand)
    start = dpo.measure(loaded.model, copy_of(loaded.model), encoded, beta=0.1)
    assert abs(start["loss"] - math.log(2)) <= 1e-5 and abs(start["margin"]) <= 1e-6 and abs(start["kl"]) <= 1e-6
    assert start["accuracy"] == 0.0                                    # equal rewards: none is strictly preferred


def copy_of(model):
    import copy

    return copy.deepcopy(model)


def test_dpo_raises_the_chosen_replies_reward_and_logs_margin_accuracy_and_kl(tmp_path):
    from glassformer import dpo

    pairs = dpo.read_pairs(write_jsonl(tmp_path / "pairs.jsonl",
                                       [{"prompt": f"Who? {n}:", "chosen": n, "rejected": "LEAR"} for n in NAMES[:3]]))
    policy, rows = dpo.dpo(tiny_loaded().model, COURSE_CHARS, pairs, steps=30, beta=0.5, lr=3e-3, batch_size=3,
                           eval_interval=10)
    assert [r["step"] for r in rows] == [0, 10, 20, 30]
    assert rows[-1]["held_out_accuracy"] == 1.0 and rows[-1]["held_out_margin"] > 1.0
    assert rows[-1]["held_out_loss"] < rows[0]["held_out_loss"] and rows[-1]["held_out_kl"] > 0
