"""The batched generation engine (explorer.engine) on SmolLM2-135M, in three measurements, bounded in time:

(a) 8 threads calling ``explorer.generation.generate`` at once against the same 8 one after another: identical
    token ids asserted, and the ratio of the total times printed (goal: concurrent <= 1/3 of sequential);
(b) one stream alone: tokens/s of the engine against the pre-engine eager loop (``solo_generation``: a growing
    KVCache, decoded in the caller's thread), same prompt, same process, greedy tokens asserted identical;
(c) total tokens/s with 1, 4, 8, 16 and 32 requests decoded together (the engine's cap lifted to 32);
(d) a class pressing Generate at once: N students (--students, default 30) with 10-30-token prompts submitted in
    the same instant under the engine's cap (--cap, default the engine's): time to first token p50 / p95 from the
    click, and total tokens/s from the click to the last token (issue 12 §3: p95 < 3 s, >= 5x one student alone);
(e) the same class in the lab's chat format, every student's own question: the engine reading each prompt in
    full against it reusing the chat template's keys and values (explorer.prefix_cache), back to back, with the
    ratios of first token p95 and total tokens/s and the prompt tokens each read.

The machine may be shared: every number is printed with the ratio it is meant for, measured back to back.
torch runs with the app's thread count (EXPLORER_TORCH_THREADS, default 1: the other core is the pages').

    .venv/bin/python bench/bench_engine.py [--tokens 32] [--part a,b,c,d,e] [--students 30] [--cap N]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from explorer.device import app_threads  # noqa: E402
from explorer.engine import engine_for, engine_stats  # noqa: E402
from explorer.generation import generate, solo_generation  # noqa: E402
from explorer.models.pretrained import load_model  # noqa: E402
from explorer.sampling import SamplingSettings  # noqa: E402

PROMPTS = [
    "The history of the Great Wall of China begins",
    "Photosynthesis is the process by which",
    "Once upon a time, in a small village by the sea,",
    "The three laws of motion are",
    "def fibonacci(n):",
    "In 1969, the first humans",
    "A good breakfast includes",
    "The capital of Japan is Tokyo, and the capital of France is",
]


def settings_for(i: int, tokens: int) -> SamplingSettings:
    # Half greedy, half seeded sampling: both must come out the same, alone or together.
    return SamplingSettings(greedy=i % 2 == 0, temperature=0.8, top_k=50, max_new_tokens=tokens, seed=i)


def one(pm, i: int, tokens: int) -> list[int]:
    run = generate(pm.model, pm.tokenizer, PROMPTS[i % len(PROMPTS)], settings_for(i, tokens), stop_ids=[])
    return [s.token_id for s in run]


def part_a(pm, tokens: int) -> None:
    n = 8
    start = time.perf_counter()
    sequential = [one(pm, i, tokens) for i in range(n)]
    t_seq = time.perf_counter() - start
    together: list = [None] * n
    barrier = threading.Barrier(n + 1)

    def worker(i: int) -> None:
        barrier.wait()
        together[i] = one(pm, i, tokens)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    t_conc = time.perf_counter() - start
    same = sum(a == b for a, b in zip(sequential, together))
    print(f"(a) {n} x {tokens} tokens: one after another {t_seq:.2f} s, all at once {t_conc:.2f} s, "
          f"ratio {t_conc / t_seq:.3f} (goal <= 0.333); identical outputs {same}/{n}")
    assert same == n, "outputs differ between sequential and concurrent runs"


def stream_rate(run) -> tuple[float, list[int]]:
    """Steady tokens/s of one stream, by the wall clock: from its first token to its last."""
    ids, times = [], []
    for step in run:
        ids.append(step.token_id)
        times.append(time.perf_counter())
    return (len(ids) - 1) / (times[-1] - times[0]), ids


def part_b(pm, tokens: int, rounds: int = 3) -> None:
    s = SamplingSettings(greedy=True, max_new_tokens=tokens * 2)
    # A short prompt, and one near the lab's prompt cap: the eager loop's KVCache concatenates every layer's
    # whole cache at every step, the engine's slot cache writes one column in place.
    long_prompt = pm.tokenizer.decode(pm.tokenizer.encode(" ".join(PROMPTS) * 12)[:400])
    for name, prompt in (("short prompt", PROMPTS[0]), ("400-token prompt", long_prompt)):
        engine, eager = [], []
        for _ in range(rounds):  # alternated, so a neighbour's load hits both alike
            rate, ids_e = stream_rate(generate(pm.model, pm.tokenizer, prompt, s, stop_ids=[]))
            engine.append(rate)
            rate, ids_s = stream_rate(solo_generation(pm.model, pm.tokenizer, prompt, s, stop_ids=[]))
            eager.append(rate)
            assert ids_e == ids_s, "greedy tokens differ between the engine and the eager loop"
        e, s_ = max(engine), max(eager)
        print(f"(b) one stream, {name}, {tokens * 2} tokens: engine {e:.1f} tokens/s, eager loop {s_:.1f} "
              f"tokens/s, ratio {e / s_:.2f} (best of {rounds}); greedy tokens identical")


def part_c(pm, tokens: int) -> None:
    engine = engine_for(pm.model)
    old = engine.max_batch
    engine.max_batch = 32
    try:
        base = None
        for b in (1, 4, 8, 16, 32):
            runs = [generate(pm.model, pm.tokenizer, PROMPTS[i % len(PROMPTS)], settings_for(i, tokens),
                             stop_ids=[]) for i in range(b)]
            for r in runs:
                r.place()  # all join before the clock starts
            before = engine_stats(pm.model)["tokens_total"]
            start = time.perf_counter()
            done = [None] * b

            def drain(i: int) -> None:
                done[i] = list(runs[i])

            threads = [threading.Thread(target=drain, args=(i,)) for i in range(b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            total = engine_stats(pm.model)["tokens_total"] - before
            rate = total / wall
            base = base or rate
            print(f"(c) batch {b:2d}: {rate:6.1f} tokens/s in total, {rate / b:5.1f} per stream, "
                  f"x{rate / base:.2f} of batch 1 (prefill of {b} prompts included)")
    finally:
        engine.max_batch = old


QUESTIONS = ["Why is the sky blue?", "Write a haiku about rain.", "What is a prime number?",
             "Explain gravity to a child.", "Name three kinds of cloud.", "How do bees make honey?",
             "What does a compiler do?", "Describe the taste of a lemon.", "Why do leaves change colour?",
             "What is the speed of sound?"]


def class_at_once(pm, prompts: list[str], tokens: int, *, chat: bool = False) -> tuple[list[float], float, float]:
    """Every prompt submitted in the same instant from its own thread: (first-token times from the click, sorted;
    the wall time to the last token; total tokens/s)."""
    n = len(prompts)
    first, counts = [0.0] * n, [0] * n
    barrier = threading.Barrier(n + 1)

    def student(i: int) -> None:
        barrier.wait()
        run = generate(pm.model, pm.tokenizer, prompts[i], settings_for(i, tokens), stop_ids=[], chat=chat)
        for _ in run:
            if counts[i] == 0:
                first[i] = time.perf_counter()
            counts[i] += 1

    threads = [threading.Thread(target=student, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    click = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - click
    return sorted(f - click for f in first), wall, sum(counts) / wall


def p95(xs: list[float]) -> float:
    return xs[min(len(xs) - 1, -(-95 * len(xs) // 100) - 1)]


def part_d(pm, tokens: int, students: int, cap: int | None, budget: int | None) -> None:
    engine = engine_for(pm.model)
    old = engine.max_batch, engine.prefill_budget
    engine.max_batch = cap or old[0]
    engine.prefill_budget = budget or old[1]
    words = " ".join(PROMPTS).split()
    # 10-30 tokens each, every student's own text (no two alike).
    prompts = [" ".join(words[i % len(words):] + words)[:40 + (i * 37) % 90] for i in range(students)]
    lengths = [len(pm.tokenizer.encode(p)) for p in prompts]
    try:
        ttft, wall, rate = class_at_once(pm, prompts, tokens)
        print(f"(d) {students} students at once, cap {engine.max_batch}, prefill budget {engine.prefill_budget}, "
              f"prompts {min(lengths)}-{max(lengths)} tokens, {tokens} new each: "
              f"first token p50 {ttft[students // 2]:.2f} s, p95 {p95(ttft):.2f} s "
              f"(goal < 3 s); {rate:.1f} tokens/s in total over {wall:.1f} s")
    finally:
        engine.max_batch, engine.prefill_budget = old


def part_e(pm, tokens: int, students: int) -> None:
    engine = engine_for(pm.model)
    # Every student's own question (a number makes each unique past the ten): only the template is shared.
    prompts = [QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" ({i})") for i in range(students)]
    results = {}
    try:
        for reuse in (False, True):
            engine.set_prefix_reuse(reuse)
            read0 = engine_stats(pm.model)["prefill_tokens"]
            ttft, wall, rate = class_at_once(pm, prompts, tokens, chat=True)
            results[reuse] = (p95(ttft), rate, engine_stats(pm.model)["prefill_tokens"] - read0)
            print(f"(e) {students} chat prompts at once, prefix reuse {'on ' if reuse else 'off'}: first token "
                  f"p50 {ttft[students // 2]:.2f} s, p95 {p95(ttft):.2f} s; {rate:.1f} tokens/s in total; "
                  f"{results[reuse][2]} prompt tokens read")
    finally:
        engine.set_prefix_reuse(True)
    (p_off, r_off, t_off), (p_on, r_on, t_on) = results[False], results[True]
    print(f"(e) reuse on / off: first token p95 x{p_on / p_off:.2f}, total tokens/s x{r_on / r_off:.2f}, "
          f"prompt tokens read x{t_on / t_off:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--part", default="a,b,c")
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--cap", type=int, default=None)
    ap.add_argument("--budget", type=int, default=None, help="prompt tokens read per engine step (part d)")
    args = ap.parse_args()
    torch.set_num_threads(app_threads())
    pm = load_model("smollm2-135m", device="cpu")
    print(f"SmolLM2-135M on {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"engine cap {engine_for(pm.model).max_batch}")
    one(pm, 0, 2)  # warm-up
    parts = set(args.part.split(","))
    if "b" in parts:
        part_b(pm, args.tokens)
    if "a" in parts:
        part_a(pm, args.tokens)
    if "c" in parts:
        part_c(pm, args.tokens)
    if "d" in parts:
        part_d(pm, args.tokens, args.students, args.cap, args.budget)
    if "e" in parts:
        part_e(pm, args.tokens, args.students)
    print("engine stats:", engine_stats(pm.model))


if __name__ == "__main__":
    main()
