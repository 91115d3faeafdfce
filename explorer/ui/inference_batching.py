"""The batching tab of the inference lab: the engine's tokens per second at batch 1 to 16, measured when the student
presses the button, and the memory-bandwidth bound beside them.

The measurement sends requests to the shared engine (explorer.engine), whose loop yields to interactive work
between steps (explorer.priority), so other pages stay responsive while it runs; it is not wrapped in
``priority.interactive()``, which would hold back the very engine it measures. One measurement runs at a time in
the process: a student pressing while another one's runs waits for it and is shown its result (taken on this
machine a moment ago), so a class pressing at once costs one measurement, not forty."""
from __future__ import annotations

import threading
import time

import streamlit as st

from ..labs.inference_batching import (MAX_NEW_TOKENS, MAX_PROMPT_CHARS, BatchingSettings, Bandwidth, Roofline,
                                       measure_bandwidth, roofline, run_batching)
from ..sizing import human_bytes
from ..viz.inference_batching import throughput_figure
from .common import chart, show_outcome
from .i18n import lang, tr
from .models import shared_model
from .url_state import Control, LabView, show_problems, text, whole

MODEL = "smollm2-135m"
SHARED_FOR_S = 60.0  # a result someone else measured this long ago is still "now" for a student who waited on it
B = BatchingSettings()
RESULT_KEY = "inference_batching.result"  # session_state: (settings, outcome, shared) of the last press

VIEW = LabView("inference_batching", [
    Control("prompt", B.prompt, text(MAX_PROMPT_CHARS)),
    Control("new_tokens", B.new_tokens, whole(2, MAX_NEW_TOKENS)),
])

_LOCK = threading.Lock()
_LATEST: dict[BatchingSettings, tuple[float, object]] = {}


def measure(settings: BatchingSettings):
    """(outcome, shared): this session's measurement, or one that finished while it waited for the lock."""
    if not _LOCK.acquire(blocking=False):
        with _LOCK:  # another session's measurement is running: wait for it rather than compete with it
            pass
        latest = _LATEST.get(settings)
        if latest is not None and time.monotonic() - latest[0] < SHARED_FOR_S:
            return latest[1], True
        _LOCK.acquire()
    try:
        pm = shared_model(MODEL)
        outcome = run_batching(settings, pm.model, pm.tokenizer)
        _LATEST.clear()
        _LATEST[settings] = (time.monotonic(), outcome)
        return outcome, False
    finally:
        _LOCK.release()


@st.cache_resource(ttl=900, show_spinner=False)
def bandwidth() -> Bandwidth:
    """Measured once per process every 15 minutes: 256 MiB read, which 40 sessions must not allocate at once."""
    with _LOCK:  # not during a throughput measurement: both would measure each other
        return measure_bandwidth()


def bound() -> Roofline:
    return roofline(shared_model(MODEL).model, bandwidth())


def render() -> None:
    lg = lang()
    show_problems(VIEW.open())
    st.caption(tr("inference_batching.intro"))
    prompt_col, tokens_col, button_col = st.columns([4, 2, 1], vertical_alignment="bottom")
    prompt = prompt_col.text_input(tr("inference_batching.control.prompt"), max_chars=MAX_PROMPT_CHARS,
                                   key=VIEW.key("prompt"))
    new_tokens = tokens_col.slider(tr("inference_batching.control.new_tokens"), 2, MAX_NEW_TOKENS,
                                   key=VIEW.key("new_tokens"))
    pressed = button_col.button(tr("inference_batching.measure"), type="primary", icon=":material/speed:",
                                key="inference_batching.go", width="stretch")
    VIEW.publish()
    requested = BatchingSettings(prompt, new_tokens)
    with st.spinner(tr("inference_batching.bandwidth_spinner")):
        roof = bound()
    if pressed:
        with st.spinner(tr("inference_batching.measuring")):
            outcome, shared = measure(requested)
        st.session_state[RESULT_KEY] = (requested, outcome, shared)
    kept = st.session_state.get(RESULT_KEY)
    outcome = kept[1] if kept is not None else None
    result = outcome.result if outcome is not None else None
    chart(throughput_figure(result, roof, lg), "batching_throughput")
    if outcome is None:
        st.caption(tr("inference_batching.press"))
    else:
        show_outcome(outcome)
        if kept[0] != requested:
            st.caption(tr("inference_batching.other_settings"))
        if result is not None:
            results_text(result, roof, shared=kept[2])
    memory_bound(roof, result)


def results_text(result, roof: Roofline, *, shared: bool) -> None:
    one, last = result.points[0], result.points[-1]
    st.caption(tr("inference_batching.measured_now" if not shared else "inference_batching.measured_shared",
                  seconds=result.seconds, tokens=result.settings.new_tokens, prompt_tokens=result.prompt_tokens))
    st.markdown(tr("inference_batching.summary", batch=last.batch, total=last.total_tokens_per_s,
                   one=one.total_tokens_per_s, speedup=result.speedup, per_request=last.per_request_tokens_per_s))
    seen = ", ".join(f"{size}×{steps}" for p in result.points for size, steps in sorted(p.engine_batches.items()))
    st.caption(tr("inference_batching.engine_batches", seen=seen))
    if result.skipped:
        st.caption(tr("inference_batching.skipped", sizes=", ".join(map(str, result.skipped))))
    if result.max_batch < last.batch:
        st.caption(tr("inference_batching.max_batch", max_batch=result.max_batch))


def memory_bound(roof: Roofline, result) -> None:
    st.subheader(tr("inference_batching.bound.header"))
    traffic, bw = roof.traffic, roof.bandwidth
    cols = st.columns(4)
    cols[0].metric(tr("inference_batching.bound.bytes"), human_bytes(traffic.bytes_per_step),
                   help=tr("inference_batching.bound.bytes_help", params=traffic.n_params,
                           size=traffic.bytes_per_param, dtype=traffic.dtype))
    cols[1].metric(tr("inference_batching.bound.bandwidth"), tr("inference_batching.bound.gbps",
                                                               gbps=bw.bytes_per_s / 1e9),
                   help=tr("inference_batching.bound.bandwidth_help", size=human_bytes(bw.nbytes),
                           ms=1000 * bw.seconds))
    cols[2].metric(tr("inference_batching.bound.ceiling"), tr("inference_batching.bound.tps", tps=roof.ceiling(1)),
                   help=tr("inference_batching.bound.ceiling_help", ms=1000 * roof.step_seconds))
    measured = result.point(1) if result is not None else None
    cols[3].metric(tr("inference_batching.bound.measured"),
                   tr("inference_batching.bound.tps", tps=measured.total_tokens_per_s) if measured else "—",
                   help=tr("inference_batching.bound.measured_help"))
    st.latex(r"\text{tokens/s}_{\,b=1} \;\le\; \frac{\text{bandwidth}}{N_{\text{params}} \times \text{bytes per "
             r"parameter}}\qquad \text{intensity} = \frac{2\,b\ \text{FLOP}}{\text{bytes per parameter}}")
    st.markdown(tr("inference_batching.bound.explain", params=traffic.n_params, size=traffic.bytes_per_param,
                   step=human_bytes(traffic.bytes_per_step), gbps=bw.bytes_per_s / 1e9, tps=roof.ceiling(1),
                   intensity=roof.flops_per_byte(1), intensity16=roof.flops_per_byte(16)))
    if measured is not None:
        st.caption(tr("inference_batching.bound.share", pct=100 * measured.total_tokens_per_s / roof.ceiling(1)))
