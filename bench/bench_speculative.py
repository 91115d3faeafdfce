"""Speculative decoding against plain greedy decoding on SmolLM2-135M, in the same process, on prompts whose answer
repeats its input (copy tasks in English and Chinese: prompt lookup's good case) and on free text (its bad case),
and the early-exit draft (SmolLM2's first 24 of 30 layers + its final norm and head).

For each prompt and draft: the measured acceptance rate α, tokens per target forward beside the model
(1 - α^(k+1)) / (1 - α), tokens/s of both runs (after the prompt was read; best of --rounds, the order of the two
runs alternating) and the ratio speculative / plain; and whether both texts are the same token for token. About a
minute on a quiet 2-core machine.

    .venv/bin/python bench/bench_speculative.py [--tokens 40] [--k 4] [--rounds 2] [--threads 1] [--exit-layers 24]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from explorer.device import device_label  # noqa: E402
from explorer.labs.inference_speculative import EXAMPLES  # noqa: E402
from explorer.models.pretrained import load_model  # noqa: E402
from explorer.speculative import (ModelDraft, PromptLookupDraft, expected_tokens_per_forward,  # noqa: E402
                                  greedy_decode, run_speculative_decode)

CASES = (  # (label, example, draft)
    ("copy task (repeats its input)", "copy", "prompt_lookup"),
    ("Chinese copy task", "chinese", "prompt_lookup"),
    ("free text", "free", "prompt_lookup"),
    ("copy task, early exit", "copy", "early_exit"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exit-layers", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pm = load_model("smollm2-135m")
    tok, model, stop = pm.tokenizer, pm.model, pm.eos_token_ids
    print(f"SmolLM2-135M on {device_label(pm.device)}, {args.threads} thread(s), k = {args.k}, "
          f"up to {args.tokens} new tokens, best of {args.rounds}")
    print(f"{'prompt':34} {'draft':14} {'α':>6} {'tok/fwd':>8} {'model':>6} {'plain t/s':>10} {'spec t/s':>9} "
          f"{'ratio':>6} {'same':>5}")
    for label, example, kind in CASES:
        text, chat = EXAMPLES[example]
        ids = tok.chat_ids(text) if chat else tok.encode(text, add_special_tokens=False)
        plain_best = spec_best = 0.0
        same = True
        for r in range(args.rounds):
            draft = PromptLookupDraft() if kind == "prompt_lookup" else ModelDraft(model, args.exit_layers)
            runs = {}
            for which in (("plain", "spec") if r % 2 == 0 else ("spec", "plain")):
                if which == "plain":
                    runs[which] = greedy_decode(model, ids, args.tokens, stop)
                else:
                    runs[which] = run_speculative_decode(model, ids, draft, args.k, args.tokens, stop)
            plain, spec = runs["plain"], runs["spec"]
            same = same and plain.tokens == spec.tokens
            plain_best = max(plain_best, plain.tokens_per_second)
            spec_best = max(spec_best, spec.tokens_per_second)
        alpha = spec.acceptance_rate or 0.0
        print(f"{label:34} {kind:14} {alpha:6.2f} {spec.tokens_per_forward:8.2f} "
              f"{expected_tokens_per_forward(alpha, args.k):6.2f} {plain_best:10.1f} {spec_best:9.1f} "
              f"{spec_best / plain_best:6.2f} {'yes' if same else 'NO':>5}")
    print(f"({len(plain.tokens)} tokens in the last case; total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
