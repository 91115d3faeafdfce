"""BPE training speed: our teaching trainer (explorer.bpe) beside Hugging Face ``tokenizers``' Rust BpeTrainer on the
唐诗 corpus, and the time of each of our merge steps, which the tokenizer lab must keep interactive (goal: under
0.2 s per step at this size).

Both train 200 merges on the same chunks (explorer.bpe.CHUNK_PATTERN as tokenizers' Split pre-tokenizer, byte
level, min_frequency 2; tests/test_bpe_reference.py checks they learn the same merges up to the first tie).
Each is timed best of ``--repeat`` runs; our per-step times are of one run, setup (chunking, first count) apart.
Run: .venv/bin/python bench/bench_bpe.py [--merges 200] [--repeat 3] [--corpus tangshi]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

from explorer.bpe import CHUNK_PATTERN, BPETrainer  # noqa: E402
from explorer.corpora import CORPORA, load_corpus  # noqa: E402

GOAL_S = 0.2


def ours(text: str, merges: int, byte_level: bool) -> tuple[float, float, list[float]]:
    """(setup seconds, total seconds, each step's seconds)."""
    start = time.perf_counter()
    trainer = BPETrainer(text, byte_level=byte_level)
    setup = time.perf_counter() - start
    steps = []
    for _ in range(merges):
        t0 = time.perf_counter()
        if trainer.step() is None:
            break
        steps.append(time.perf_counter() - t0)
    return setup, time.perf_counter() - start, steps


def theirs(text: str, merges: int) -> float:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(CHUNK_PATTERN), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=256 + merges, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    start = time.perf_counter()
    tok.train_from_iterator([text], trainer)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--merges", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", choices=CORPORA, default="tangshi")
    args = parser.parse_args()
    text = load_corpus(args.corpus)
    print(f"corpus {args.corpus}: {len(text):,} characters, {len(text.encode()):,} bytes; {args.merges} merges")
    for byte_level in (True, False):
        runs = [ours(text, args.merges, byte_level) for _ in range(args.repeat)]
        setup, total, steps = min(runs, key=lambda r: r[1])
        kind = "byte-level" if byte_level else "char-level"
        print(f"ours ({kind}): {total:.3f} s total (setup {setup:.3f} s), {len(steps)} steps: "
              f"median {statistics.median(steps) * 1e3:.1f} ms, max {max(steps) * 1e3:.1f} ms per step "
              f"-> {'OK' if max(steps) < GOAL_S else 'OVER'} the {GOAL_S} s goal")
    best = min(theirs(text, args.merges) for _ in range(args.repeat))
    print(f"tokenizers BpeTrainer (byte-level, Rust): {best:.3f} s total")


if __name__ == "__main__":
    main()
