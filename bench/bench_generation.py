"""Greedy generation of 64 tokens with SmolLM2-135M: our core (explorer.generation, KV cache, every step's
candidates and entropy included) against transformers' ``generate`` on the same weights, in the same process.

Prints tokens/s of both and the ratio (ours / transformers, must be >= 1.0), and the memory-bandwidth bound: a
decode step has to read every weight once, so tokens/s can never beat (copy bandwidth) / (bytes of weights).

    .venv/bin/python bench/bench_generation.py [--tokens 64] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from explorer.device import device_label, keep_freed_memory  # noqa: E402
from explorer.generation import generate  # noqa: E402
from explorer.models.pretrained import load_model  # noqa: E402
from explorer.sampling import SamplingSettings  # noqa: E402
from tests.hf_reference import hf_causal_lm  # noqa: E402

PROMPT = "The history of the Great Wall of China begins"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(model, tokenizer, prompt_ids: list[int], n: int) -> tuple[float, list[int]]:
    sync(model.device)
    start = time.perf_counter()
    steps = list(generate(model, tokenizer, prompt_ids, SamplingSettings(greedy=True, max_new_tokens=n),
                          stop_ids=[]))
    sync(model.device)
    return time.perf_counter() - start, [s.token_id for s in steps]


def theirs(hf, prompt_ids: list[int], n: int) -> tuple[float, list[int]]:
    ids = torch.tensor([prompt_ids], device=hf.device)
    sync(hf.device)
    start = time.perf_counter()
    with torch.inference_mode():
        # min_new_tokens = max_new_tokens and no EOS: exactly n tokens, as ours with stop_ids=[].
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                          min_new_tokens=n, eos_token_id=None, pad_token_id=0, top_k=None, top_p=None,
                          temperature=None)
    sync(hf.device)
    return time.perf_counter() - start, out[0, len(prompt_ids):].tolist()


def copy_bandwidth(device: torch.device, mib: int = 512, repeats: int = 5) -> float:
    """Bytes per second moved by a large tensor copy (each byte read once and written once)."""
    src = torch.ones(mib * 2**20 // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * src.element_size() / best


def weight_bytes(model: torch.nn.Module) -> int:
    seen, total = set(), 0
    for p in model.parameters():  # a tied embedding / unembedding table is one tensor, read once per token
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default; the app uses 1)")
    args = ap.parse_args()
    keep_freed_memory()  # as the app does at start (explorer.device.configure_process): measured with it
    if args.threads:
        torch.set_num_threads(args.threads)

    pm = load_model("smollm2-135m")
    device = pm.device
    hf_models = {impl: hf_causal_lm(pm.source, impl, device) for impl in ("eager", "sdpa")}
    prompt_ids = pm.tokenizer.encode(PROMPT, add_special_tokens=False)
    n = args.tokens
    print(f"device: {device_label(device)}, torch threads: {torch.get_num_threads()}")
    print(f"prompt: {PROMPT!r} ({len(prompt_ids)} tokens), greedy, {n} new tokens, best of {args.rounds} rounds")

    # Ours twice: as load_model returns it (weights column-major, see decode_layout_) and with the weights copied
    # back to the row-major layout transformers keeps, to show what the layout alone is worth.
    row_major = copy.deepcopy(pm.model)
    with torch.no_grad():
        for p in row_major.parameters():
            p.data = p.data.contiguous()
    ours_models = {"ours (as loaded)": pm.model, "ours (row-major weights)": row_major}
    # Warm up every path once, and check they all produce the same text (so they did the same work).
    _, ref = ours(pm.model, pm.tokenizer, prompt_ids, n)
    for name, model in ours_models.items():
        assert ours(model, pm.tokenizer, prompt_ids, n)[1] == ref, f"{name} generated other tokens"
    for impl, hf in hf_models.items():
        _, toks = theirs(hf, prompt_ids, n)
        assert toks == ref, f"transformers ({impl}) generated other tokens than ours"
    times: dict[str, list[float]] = {**{name: [] for name in ours_models},
                                     **{f"transformers {impl}": [] for impl in hf_models}}
    for _ in range(args.rounds):  # interleaved, so a busy moment on the machine hits every contender alike
        for name, model in ours_models.items():
            times[name].append(ours(model, pm.tokenizer, prompt_ids, n)[0])
        for impl, hf in hf_models.items():
            times[f"transformers {impl}"].append(theirs(hf, prompt_ids, n)[0])

    # The fastest round: other processes on the machine can only ever slow a round down, never speed it up.
    tps = {name: n / min(ts) for name, ts in times.items()}
    for name, v in tps.items():
        print(f"{name:>24}: {v:7.1f} tokens/s  (runs: {', '.join(f'{t:.2f}s' for t in times[name])})")
    for name in ours_models:
        for impl in hf_models:
            print(f"ratio {name} / transformers {impl}: {tps[name] / tps[f'transformers {impl}']:.2f}")

    wbytes = weight_bytes(pm.model)
    bw = copy_bandwidth(device)
    bound = bw / wbytes
    print(f"weights read per token: {wbytes / 1e6:.0f} MB (float32, tied embedding counted once)")
    print(f"measured copy bandwidth: {bw / 1e9:.1f} GB/s -> bandwidth bound {bound:.1f} tokens/s")
    best_hf = max(tps[f"transformers {impl}"] for impl in hf_models)
    for name in ours_models:
        ratio = tps[name] / best_hf
        print(f"RESULT {name}: {tps[name] / bound:.0%} of the bound; ratio to the best transformers = {ratio:.2f} "
              f"({'ok' if ratio >= 1.0 else 'BELOW 1.0'})")


if __name__ == "__main__":
    main()
