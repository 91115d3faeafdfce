"""Sizing lab speed: arithmetic against building the model, and the page's rerun time against a bare page.

1. count_params of a preset against building the same model on the meta device (the cheapest way to get its
   parameters from torch): the ratio says how much the lab saves by never building anything. Beside it, the
   lab's whole run(settings) (every panel), the cost a cache in explorer/ui/sizing.py would save per rerun.
2. Server-side rerun time of labs/sizing.py through AppTest for a series of preset changes, next to the bare
   one-widget page (bench/_bare_page.py) measured in the same process.
Run: .venv/bin/python bench/bench_sizing.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer.device import configure_process  # noqa: E402
from explorer.labs.sizing import ModelSettings, SizingSettings, run  # noqa: E402
from explorer.model import Transformer  # noqa: E402
from explorer.presets import REAL_MODELS  # noqa: E402
from explorer.sizing import count_params  # noqa: E402
from explorer.ui.sizing import VIEW  # noqa: E402  (widget keys: sizing.<settings field>)


def best_of(fn, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def meta_count(cfg) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Transformer(cfg).parameters())


def reruns(path: Path, moves) -> list[float]:
    at = AppTest.from_file(str(path), default_timeout=120).run()
    out = []
    for move in moves:
        move(at)
        start = time.perf_counter()
        at.run()
        out.append((time.perf_counter() - start) * 1e3)
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]  # a refused preset would time the error message only
    return out


def main() -> None:
    configure_process()  # the app's threads and allocator (app.py): the pages are timed as they run there
    for key in ("GPT-2 small", "Llama-3-70B", "GPT-3 175B"):
        cfg = REAL_MODELS[key].cfg
        arithmetic = best_of(lambda: count_params(cfg), 20)
        built = best_of(lambda: meta_count(cfg), 3)
        lab = best_of(lambda: run(SizingSettings(model=ModelSettings(preset=key))), 20)
        print(f"{key:12s} count_params {arithmetic * 1e6:8.1f} us   meta-device model {built * 1e3:8.1f} ms   "
              f"ratio {built / arithmetic:,.0f}x   lab run(settings) {lab * 1e3:.2f} ms")
    names = ["LLaMA-7B", "BERT-base", "GPT-3 175B", "Qwen-1.8B", "SmolLM2-135M", "GPT-2 small"] * 2
    lab = reruns(ROOT / "labs/sizing.py",
                 [lambda a, n=n: a.selectbox(key=VIEW.key("preset")).set_value(n) for n in names])
    bare = reruns(ROOT / "bench/_bare_page.py",
                  [lambda a, v=v: a.slider(key="value").set_value(v) for v in range(1, len(names) + 1)])
    lab_ms, bare_ms = statistics.median(lab), statistics.median(bare)
    print(f"sizing lab rerun (preset change): median {lab_ms:.0f} ms; bare page {bare_ms:.0f} ms; "
          f"ratio {lab_ms / bare_ms:.1f}x")


if __name__ == "__main__":
    main()
