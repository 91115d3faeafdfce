"""Server-side rerun time of the attention lab and the positional lab, next to a bare one-widget page.

Each lab is driven by AppTest through a series of control changes at the largest sizes the labs allow
(32 tokens; attention lab d_model 512 and 16 heads; positional lab a 64 x 256 table), plus the attention lab at
its defaults. "cold" clears Streamlit's caches before every rerun, so every rerun computes and
draws from scratch (one student trying a new setting); "warm" replays the same changes with the caches kept (the
40 students of a class following the teacher's settings). Our own work per rerun is the lab's time minus the bare
page's, measured in the same process. Run: .venv/bin/python bench/bench_labs.py
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

import streamlit as st  # noqa: E402
import torch  # noqa: E402
from streamlit.logger import get_logger  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer.device import configure_process  # noqa: E402
from explorer.models.toy_tokens import MAX_LAB_TOKENS, tokenize  # noqa: E402
from explorer.ui.attention import VIEW as ATT  # noqa: E402  (the widget keys: <lab>.<settings field>)
from explorer.ui.positional import VIEW as POS  # noqa: E402

configure_process()  # the app's threads and allocator (app.py), before anything runs

# clearing the caches from outside a script run logs a notice each time
get_logger("streamlit.runtime.caching.cache_data_api").addFilter(lambda r: "No runtime" not in r.getMessage())

# The labs' largest input: exactly MAX_LAB_TOKENS (32) Qwen BPE tokens; a longer sentence is refused, not cut
LONG_SENTENCE = ("The quick brown fox jumps over the lazy dog while the cat sat on the mat and "
                 "watched the birds fly south for the winter, and the old farmer counted sheep")
TARGET_MS = 150.0


def timed_reruns(at: AppTest, moves, cold: bool) -> tuple[list[float], list[float]]:
    """Apply each move (a function of the AppTest) and rerun; return the wall and CPU times in ms.

    CPU time (this process, all threads) is less sensitive than wall time to other programs on the machine."""
    wall, cpu = [], []
    for move in moves:
        if cold:
            st.cache_data.clear()
            st.cache_resource.clear()
        move(at)
        start, start_cpu = time.perf_counter(), time.process_time()
        at.run()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]  # a refused setting would time the error message only
    return wall, cpu


def bare_times(n: int) -> tuple[list[float], list[float]]:
    at = AppTest.from_file(str(ROOT / "bench/_bare_page.py"), default_timeout=60).run()
    return timed_reruns(at, [lambda a, v=v: a.slider(key="value").set_value(v) for v in
                             [(i * 37) % 100 for i in range(1, n + 1)]], cold=False)


def attention_moves():
    moves = []
    for n_head in (8, 16, 4, 16, 2, 16):
        moves.append(lambda a, n=n_head: a.slider(key=ATT.key("n_head")).set_value(n))
    for mask in ("none", "padding", "sliding_window", "prefix", "causal"):
        moves.append(lambda a, m=mask: a.selectbox(key=ATT.key("mask")).set_value(m))
    moves.append(lambda a: a.toggle(key=ATT.key("scale")).set_value(False))
    moves.append(lambda a: a.toggle(key=ATT.key("scale")).set_value(True))
    moves.append(lambda a: a.select_slider(key=ATT.key("zoom_16")).set_value(7))  # the page's zoom for 16 heads
    moves.append(lambda a: a.number_input(key=ATT.key("seed")).set_value(11))
    moves.append(lambda a: a.number_input(key=ATT.key("d_model")).set_value(256))
    moves.append(lambda a: a.number_input(key=ATT.key("d_model")).set_value(512))
    return moves


def attention_default_moves():
    """The course's sentence, d_model 64: what a class sees first."""
    moves = [lambda a, n=n: a.slider(key=ATT.key("n_head")).set_value(n) for n in (8, 2, 4, 1, 4)]
    moves += [lambda a, m=m: a.selectbox(key=ATT.key("mask")).set_value(m) for m in ("none", "padding", "causal")]
    moves.append(lambda a: a.toggle(key=ATT.key("scale")).set_value(False))
    moves.append(lambda a: a.number_input(key=ATT.key("seed")).set_value(3))
    return moves


def attention_setup(at: AppTest) -> AppTest:
    at.text_input(key=ATT.key("sentence")).set_value(LONG_SENTENCE).run()
    at.number_input(key=ATT.key("d_model")).set_value(512).run()
    at.slider(key=ATT.key("n_head")).set_value(16).run()
    return at


def positional_moves():
    """Each section's controls appear only with its encoding: every move below is made while its widget is shown."""
    moves = []
    for enc in ("sinusoidal", "learned", "rope", "alibi", "none", "sinusoidal"):
        moves.append(lambda a, e=enc: a.radio(key=POS.key("positional")).set_value(e))
    moves.append(lambda a: a.slider(key=POS.key("n_pos")).set_value(48))
    moves.append(lambda a: a.select_slider(key=POS.key("d_model")).set_value(128))
    moves.append(lambda a: a.select_slider(key=POS.key("theta")).set_value(100_000.0))
    moves.append(lambda a: a.slider(key=POS.key("effect_head")).set_value(3))
    moves.append(lambda a: a.radio(key=POS.key("positional")).set_value("rope"))
    moves.append(lambda a: a.slider(key=POS.key("pair")).set_value(9))  # d_head 64: pairs 0..31
    moves.append(lambda a: a.radio(key=POS.key("positional")).set_value("alibi"))
    moves.append(lambda a: a.slider(key=POS.key("alibi_heads")).set_value(16))
    moves.append(lambda a: a.radio(key=POS.key("positional")).set_value("none"))
    moves.append(lambda a: a.selectbox(key=POS.key("perm_encoding")).set_value("rope"))
    moves.append(lambda a: a.number_input(key=POS.key("shuffle_seed")).set_value(5))
    return moves


def positional_setup(at: AppTest) -> AppTest:
    at.text_input(key=POS.key("sentence")).set_value(LONG_SENTENCE).run()
    at.select_slider(key=POS.key("d_model")).set_value(256).run()
    at.slider(key=POS.key("n_pos")).set_value(64).run()
    return at


def summary(name: str, times: tuple[list[float], list[float]], bare: tuple[float, float]) -> str:
    wall, cpu = times
    med, med_cpu = statistics.median(wall), statistics.median(cpu)
    p90 = sorted(wall)[int(0.9 * (len(wall) - 1))]
    own, own_cpu = med - bare[0], med_cpu - bare[1]
    verdict = "ok" if own < TARGET_MS else "OVER"
    return (f"{name:<32} wall median {med:6.1f} ms (p90 {p90:6.1f}, max {max(wall):6.1f}), "
            f"{med / bare[0]:5.1f}x bare; own work {own:6.1f} ms wall, {own_cpu:6.1f} ms CPU per rerun "
            f"[{verdict}: target < {TARGET_MS:.0f} ms]")


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()} (set by configure_process), cpus: {os.cpu_count()}")
    assert len(tokenize(LONG_SENTENCE).tokens) == MAX_LAB_TOKENS, "the long sentence no longer fills the lab"
    bare_times(5)  # warm up Streamlit and AppTest
    wall, cpu = bare_times(30)
    bare = (statistics.median(wall), statistics.median(cpu))
    print(f"{'bare one-widget page':<32} wall median {bare[0]:6.1f} ms, CPU {bare[1]:6.1f} ms per rerun")
    for name, page, setup, moves in (
        ("attention lab, defaults", "labs/attention.py", lambda at: at, attention_default_moves),
        ("attention lab", "labs/attention.py", attention_setup, attention_moves),
        ("positional lab", "labs/positional.py", positional_setup, positional_moves),
    ):
        at = setup(AppTest.from_file(str(ROOT / page), default_timeout=300).run())
        cold = timed_reruns(at, moves(), cold=True)
        at = setup(AppTest.from_file(str(ROOT / page), default_timeout=300).run())
        timed_reruns(at, moves(), cold=False)  # fill the caches
        warm = timed_reruns(at, moves(), cold=False)
        print(summary(f"{name} (cold caches)", cold, bare))
        print(summary(f"{name} (warm caches)", warm, bare))
    wall, _ = bare_times(30)
    print(f"{'bare page again':<32} wall median {statistics.median(wall):6.1f} ms (close to the first: the "
          "machine's load stayed the same)")


if __name__ == "__main__":
    main()
