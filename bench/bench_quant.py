"""Quantized vs float32 SmolLM2 on this CPU: greedy tokens/s and weight memory, every model in the same process.

    .venv/bin/python bench/bench_quant.py [--tokens 32] [--repeats 3]

Four models decode the same chat prompt greedily with a KV cache (explorer.labs.inference_quant.greedy):

- float32: the app's model (the Q4_1 file dequantized);
- fake 4-bit: the quantization tab's copy (4-bit symmetric, groups of 32, quantize→dequantize): the weights are
  float32 again, so it computes exactly as much as float32 and saves nothing: it shows quality, not speed;
- int8 weight-only: every block matrix and the output layer stored as int8 with one float scale per row, multiplied
  by torch._weight_int8pack_mm (it reads 1 byte per weight instead of 4; on a CPU without a fast path for float32
  activations it can be slower than float32: the bench says what this machine does);
- int8 dynamic: torch.ao.quantization.quantize_dynamic on nn.Linear (int8 weights, activations quantized per call,
  an int8 x int8 GEMM through fbgemm/onednn), when this torch build still has it.

Prints tokens/s, the median of ``--repeats`` runs (the runs alternate so a busy machine slows all alike), the weight
bytes of each, the ratio against float32 and how many greedy tokens agree with float32. Bounded: under two minutes on a
quiet two-core machine at the defaults.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from explorer.labs.inference_quant import greedy, quantized_copy  # noqa: E402
from explorer.models.pretrained import load_model  # noqa: E402
from explorer.quant import QuantFormat  # noqa: E402

PROMPT = "Explain in two sentences why the sky is blue."


class Int8WeightLinear(nn.Module):
    """y = x · (s ⊙ Q)ᵀ with Q int8 (rows = output channels) and one float32 scale s per row, computed by
    torch._weight_int8pack_mm without ever materialising the float weights."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
        self.register_buffer("q", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous())
        self.register_buffer("scale", scale.contiguous())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch._weight_int8pack_mm(x.reshape(-1, shape[-1]).contiguous(), self.q, self.scale)
        y = y.reshape(*shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def shallow_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares every tensor with ``model`` (nothing is written onto them): replacing a
    module of the copy leaves ``model`` as it was, and costs no copy of 538 MB."""
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


def int8_weight_only(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose nn.Linear modules (the tied output layer included) are Int8WeightLinear; the
    embedding table stays float32 (the lookup reads one row per token)."""
    out = shallow_copy(model)
    for name, module in list(out.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8WeightLinear(child))
    return out


def int8_dynamic(model: nn.Module) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(shallow_copy(model), {nn.Linear}, dtype=torch.qint8,
                                                          inplace=True)
    except Exception as err:  # a build without the quantized engines: say so and go on
        print(f"int8 dynamic: unavailable in this torch build ({type(err).__name__}: {err})")
        return None


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer, packed dynamic-quantized weights included."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    for m in model.modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):  # its int8 weight lives in a packed object
            w, b = m.weight(), m.bias()
            total += w.numel() * w.element_size() + (0 if b is None else b.numel() * b.element_size())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    pm = load_model("smollm2-135m", device="cpu")
    prompt = pm.encode(PROMPT, chat=True).ids
    fake = quantized_copy(pm.model, QuantFormat(4, "symmetric", "group", 32))
    models = {"float32": pm.model,
              "fake 4-bit (g32, float32 compute)": fake.model,
              "int8 weight-only (_weight_int8pack_mm)": int8_weight_only(pm.model)}
    dynamic = int8_dynamic(pm.model)
    if dynamic is not None:
        models["int8 dynamic (quantize_dynamic)"] = dynamic
    eos = ()  # a fixed number of tokens for every model: an early end would flatter one of them
    print(f"loaded and quantized in {time.perf_counter() - start:.0f} s", flush=True)
    outputs = {}
    for name, m in models.items():  # warm-up, and the tokens each model writes
        t = time.perf_counter()
        outputs[name] = greedy(m, prompt, args.tokens, eos)
        print(f"  warm-up {name}: {time.perf_counter() - t:.1f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            t = time.perf_counter()
            greedy(m, prompt, args.tokens, eos)
            times[name].append(time.perf_counter() - t)
    print(f"SmolLM2-135M-Instruct, {len(prompt)}-token prompt, {args.tokens} greedy tokens, KV cache, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    base_tps = args.tokens / statistics.median(times["float32"])
    base_bytes = weight_bytes(pm.model)
    print(f"{'model':42s} {'tokens/s':>9s} {'x fp32':>7s} {'weights MB':>11s} {'x fp32':>7s} {'same tokens':>12s}")
    for name, m in models.items():
        tps = args.tokens / statistics.median(times[name])
        nbytes = weight_bytes(m)
        same = next((i for i, (a, b) in enumerate(zip(outputs["float32"], outputs[name])) if a != b), args.tokens)
        print(f"{name:42s} {tps:9.1f} {tps / base_tps:7.2f} {nbytes / 1e6:11.1f} {nbytes / base_bytes:7.2f} "
              f"{same:>5d}/{args.tokens}")
    stored = base_bytes - 4 * fake.n_weights + fake.nbytes
    print(f"(fake 4-bit holds float32 weights; stored as 4-bit codes + float16 scales its 210 matrices would take "
          f"{fake.nbytes / 1e6:.1f} MB, the model with its float32 embedding {stored / 1e6:.1f} MB)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
