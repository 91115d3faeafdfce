"""Training tokens/s of the training lab's loop against a plain nanoGPT-style PyTorch loop, same process.

    .venv/bin/python bench/bench_training.py [--steps 200] [--chunk 5] [--threads 1] [--corpus tangshi]

Both train the same model (explorer.model.Transformer, the lab's default settings, the same initial weights) on the
same tokens with the same batch size, context, learning-rate schedule and clipping. The plain loop is what
nanoGPT's train.py does per iteration: a random batch, forward, cross-entropy, backward, clip_grad_norm_,
torch.optim.AdamW (its own CPU loop), set the lr; it reads the loss back only every 10 steps, and it evaluates,
samples and draws nothing. The lab's loop (Trainer.steps()) adds everything the page shows: the loss of every step,
the gradient norm of every layer, the priority gate, and at its checkpoints the validation loss, a sample and every
head's attention. The loops run in turn, a few updates each, so a machine that gets busier meanwhile slows all of
them alike. Printed: tokens/s of each over all its updates (its checkpoints included), the lab without checkpoints
(the loop's own cost), and the ratios; the goal is lab / plain >= 0.9.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from explorer.labs.training import MAX_STEPS, TrainingSettings, param_groups, prepare  # noqa: E402
from explorer.model import Transformer  # noqa: E402
from explorer.optim import cosine_with_warmup  # noqa: E402

GOAL = 0.9


def plain_loop(settings: TrainingSettings, train_ids: torch.Tensor, vocab: int) -> Iterator[None]:
    """nanoGPT's iteration, one update per ``next()``."""
    cfg = settings.model_config(vocab)
    model = Transformer.from_seed(cfg, settings.seed).train()
    opt = torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr,
                            betas=(settings.beta1, settings.beta2), eps=settings.eps)
    g = torch.Generator().manual_seed(settings.seed)
    T, B = settings.context, settings.batch_size
    for it in range(settings.steps):
        lr = settings.lr * cosine_with_warmup(it, settings.steps, settings.warmup, settings.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        ix = torch.randint(len(train_ids) - T, (B,), generator=g)
        x = torch.stack([train_ids[i:i + T] for i in ix.tolist()])
        y = torch.stack([train_ids[i + 1:i + 1 + T] for i in ix.tolist()])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if it % 10 == 0:
            loss.item()
        yield None


def interleaved(loops: dict[str, Iterator], steps: int, chunk: int) -> dict[str, float]:
    """Total seconds each loop spends on ``steps`` updates, run ``chunk`` updates at a time in turn (the first of
    a round changing each round): a machine that gets busier or quieter meanwhile slows every loop alike."""
    seconds = dict.fromkeys(loops, 0.0)
    names = list(loops)
    for turn, done in enumerate(range(0, steps, chunk)):
        for name in names[turn % len(names):] + names[:turn % len(names)]:  # each goes first in turn
            loop = loops[name]
            start = time.perf_counter()
            for _ in range(min(chunk, steps - done)):
                next(loop)
            seconds[name] += time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("EXPLORER_TORCH_THREADS", "1")))
    parser.add_argument("--corpus", default="tangshi")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    settings = TrainingSettings(corpus=args.corpus, steps=args.steps)
    # The same run with no checkpoint after step 0's: what the loop itself costs.
    bare = dataclasses.replace(settings, eval_every=MAX_STEPS, sample_every=MAX_STEPS)
    lab, lab_bare = prepare(settings).result, prepare(bare).result  # tokenizing and building: not timed
    train_ids, vocab = lab.data.train_ids, lab.config.vocab_size
    print(f"model: {lab.n_params:,} parameters, vocab {vocab:,}, batch {settings.batch_size} x context "
          f"{settings.context}, {args.steps} steps, torch threads {args.threads}, validation every "
          f"{settings.eval_every} steps, sample + attention every {settings.sample_every}")
    for _ in plain_loop(dataclasses.replace(settings, steps=3), train_ids, vocab):  # warm-up: allocator, kernels
        pass
    seconds = interleaved({"plain": plain_loop(settings, train_ids, vocab), "lab": lab.steps(),
                           "lab, no checkpoints": lab_bare.steps()}, args.steps, args.chunk)
    tokens = args.steps * settings.batch_size * settings.context
    rate = {name: tokens / s for name, s in seconds.items()}
    for name, r in rate.items():
        print(f"{name:>20}: {r:10,.0f} tokens/s  ({seconds[name]:.2f} s)")
    ratio = rate["lab"] / rate["plain"]
    print(f"lab / plain = {ratio:.3f} (goal >= {GOAL}); lab without checkpoints / plain = "
          f"{rate['lab, no checkpoints'] / rate['plain']:.3f}; the checkpoints take "
          f"{1 - rate['lab'] / rate['lab, no checkpoints']:.1%} of the lab's time")
    print("PASS" if ratio >= GOAL else "BELOW GOAL")


if __name__ == "__main__":
    main()
