"""Where chapter 8's slider -> chart time goes, piece by piece, outside the browser.

    python bench/ui_profile.py

Times, on the course model and the default prompt: the model's forward pass (not re-run by a
slider), the sampling filters, building the Altair chart, serializing its spec (what marimo
sends), and the two cells the sampling sliders also re-run (the 12-step walk-through and the
40-token sampled text). bench/ui_latency.py measures the whole round trip in chromium.
"""

from __future__ import annotations

import torch

from glassformer import timing


def ms(fn, repeats: int = 20) -> str:
    """Median time of fn() in milliseconds with its interval and runs (timing.measure, the
    process's threads, as the course server runs)."""
    return timing.measure(fn, repeats=repeats, threads=None).figure(digits=2)


def main() -> None:
    from glassformer import generate as gen
    from glassformer import sampling
    from glassformer.course.widgets import prob_bars
    from glassformer.precision import cpu_capability
    from glassformer.registry import load_model

    loaded = load_model("course")
    tok = loaded.tokenizer
    prompt = tok.encode("KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by ")
    settings = dict(temperature=0.8, top_k=None, top_p=0.9, min_p=0.0)
    with torch.no_grad():
        logits = loaded.model(torch.tensor([prompt]))[0, -1].float()

    def chart():
        filtered = sampling.distribution(logits, **settings)
        order = logits.softmax(-1).argsort(descending=True)[:24].tolist()
        return prob_bars([tok.decode([i]) for i in order], [filtered[i].item() for i in order])

    spec = chart()
    print(f"CPU: {cpu_capability().summary}; torch threads {torch.get_num_threads()}")
    rows = [
        ("model forward on the prompt (not re-run by a slider)", ms(lambda: loaded.model(torch.tensor([prompt])))),
        ("filters + softmax (sampling.distribution)", ms(lambda: sampling.distribution(logits, **settings))),
        ("build the Altair chart", ms(chart)),
        ("serialize its spec (to_dict)", ms(lambda: spec.to_dict())),
        ("walk-through cell: stream 12 steps with on_step", ms(lambda: list(gen.stream(
            loaded.model, prompt, 12, seed=0, **settings, on_step=lambda s: None)), 5)),
        ("sampling card: generate 40 tokens", ms(lambda: gen.generate(loaded.model, prompt, 40, seed=0, **settings), 5)),
    ]
    for what, t in rows:
        print(f"{t:>30s}  {what}")


if __name__ == "__main__":
    main()
