"""The KV-cache tab of the inference lab: cache memory per layout over the context, then a paged and a contiguous
server side by side. Every control is in the address under its settings' name."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import priority
from ..labs.inference_kvcache import (BLOCK_SIZES, CUSTOM, KV_DTYPES, MAX_LENS, MAX_POOL_BLOCKS, MAX_REQUESTS,
                                      MODELS, SEED_MAX, KVCacheSettings, PagingSettings, run_kvcache, run_paging)
from ..config import kv_head_choices
from ..sizing import human_bytes
from ..viz.inference_kvcache import layout_name, memory_figure, model_label, paging_figure, pool_figure
from .common import chart, show_outcome
from .i18n import lang, tr
from .url_state import Control, LabView, one_of, show_problems, whole

CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
POOL_STEP = 8
MAX_STEP_OPTIONS = 1000
AT_STEP = 120  # with the defaults: the contiguous pool is full and requests wait while the paged one serves them all
K = KVCacheSettings()
P = PagingSettings()

VIEW = LabView("inference_kvcache", [
    Control("preset", K.preset, one_of(MODELS)),
    Control("n_layer", K.n_layer, whole(1, 128)),
    Control("n_head", K.n_head, whole(1, 128)),
    Control("n_kv_head", K.n_kv_head, whole(1, 128)),
    Control("d_head", K.d_head, whole(16, 256)),
    Control("kv_lora_rank", K.kv_lora_rank, whole(16, 2048)),
    Control("rope_dim", K.rope_dim, whole(0, 256)),
    Control("kv_dtype", K.kv_dtype, one_of(KV_DTYPES)),
    Control("context", K.context, one_of(CONTEXTS)),
    Control("batch", K.batch, one_of(BATCHES)),
    Control("block_size", P.block_size, one_of(BLOCK_SIZES)),
    Control("pool_blocks", P.pool_blocks, whole(POOL_STEP, MAX_POOL_BLOCKS)),
    Control("max_len", P.max_len, one_of(MAX_LENS)),
    Control("n_requests", P.n_requests, whole(1, MAX_REQUESTS)),
    Control("seed", P.seed, whole(0, SEED_MAX)),
    Control("at_step", AT_STEP, whole(0, 1_000_000)),
])


@st.cache_data(show_spinner=False, max_entries=64)
def cached_kvcache(settings: KVCacheSettings):
    with priority.interactive():
        return run_kvcache(settings)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_paging(settings: PagingSettings, at_step: int | None):
    with priority.interactive():  # two simulations, tens of milliseconds: the engine waits that long
        return run_paging(settings, () if at_step is None else (at_step,))


def memory_controls() -> KVCacheSettings:
    """One row above the chart (the model, the format, the context, the batch); a custom shape's row below it."""
    model, dtype, context, batch = st.columns([2, 1, 2, 2])
    preset = model.selectbox(tr("inference_kvcache.control.preset"), MODELS, key=VIEW.key("preset"),
                             format_func=lambda m: model_label(lang(), m))
    kv_dtype = dtype.selectbox(tr("inference_kvcache.control.kv_dtype"), KV_DTYPES, key=VIEW.key("kv_dtype"),
                               help=tr("inference_kvcache.control.kv_dtype_help"))
    ctx = context.select_slider(tr("inference_kvcache.control.context"), CONTEXTS, key=VIEW.key("context"),
                                format_func=lambda n: f"{n:,}")
    n_batch = batch.select_slider(tr("inference_kvcache.control.batch"), BATCHES, key=VIEW.key("batch"))
    shape = {}
    if preset == CUSTOM:
        cols = st.columns(6)
        shape["n_layer"] = cols[0].number_input("n_layer", 1, 128, key=VIEW.key("n_layer"))
        shape["n_head"] = cols[1].number_input("n_head", 1, 128, key=VIEW.key("n_head"))
        kv_choices = kv_head_choices(shape["n_head"])
        VIEW.keep_valid("n_kv_head", lambda v: v in kv_choices, kv_choices[-1])
        shape["n_kv_head"] = cols[2].selectbox("n_kv_head", kv_choices, key=VIEW.key("n_kv_head"))
        shape["d_head"] = cols[3].number_input("d_head", 16, 256, step=16, key=VIEW.key("d_head"))
        shape["kv_lora_rank"] = cols[4].number_input(tr("inference_kvcache.control.kv_lora_rank"), 16, 2048, step=16,
                                                     key=VIEW.key("kv_lora_rank"))
        shape["rope_dim"] = cols[5].number_input(tr("inference_kvcache.control.rope_dim"), 0, 256, step=16,
                                                 key=VIEW.key("rope_dim"))
    return KVCacheSettings(preset=preset, kv_dtype=kv_dtype, context=ctx, batch=n_batch, **shape)


def paging_controls() -> PagingSettings:
    cols = st.columns(5)
    block_size = cols[0].select_slider(tr("inference_kvcache.control.block_size"), BLOCK_SIZES,
                                       key=VIEW.key("block_size"))
    max_len = cols[1].select_slider(tr("inference_kvcache.control.max_len"), MAX_LENS, key=VIEW.key("max_len"))
    # a fixed range: a pool too small for the longest request is named by the settings' check, and shown at the
    # smallest pool that holds one
    pool = cols[2].slider(tr("inference_kvcache.control.pool_blocks"), POOL_STEP, MAX_POOL_BLOCKS,
                          key=VIEW.key("pool_blocks"))
    n = cols[3].slider(tr("inference_kvcache.control.n_requests"), 1, MAX_REQUESTS, key=VIEW.key("n_requests"))
    seed = cols[4].number_input(tr("inference_kvcache.control.seed"), 0, SEED_MAX, key=VIEW.key("seed"))
    return PagingSettings(block_size=block_size, pool_blocks=pool, max_len=max_len, n_requests=n, seed=seed)


def memory_table(result, lg: str) -> pd.DataFrame:
    rows = []
    for row in result.rows:
        if row.layout == "mla":
            cached = tr("inference_kvcache.table.latent", d_c=result.kv_lora_rank, d_r=result.rope_dim)
        else:
            cached = tr("inference_kvcache.table.heads" if row.kv_heads > 1 else "inference_kvcache.table.heads_one",
                        n=row.kv_heads, d_head=result.cfg.d_head)
        rows.append({
            tr("inference_kvcache.table.layout"): layout_name(lg, row.layout) + (" ✓" if row.own else ""),
            tr("inference_kvcache.table.cached"): cached,
            # exact numbers with a thousands separator (a dataframe would print 566231040)
            tr("inference_kvcache.table.per_layer"): f"{row.values_per_token_layer:,}",
            tr("inference_kvcache.table.per_token"): f"{int(row.bytes_per_token):,}",
            tr("inference_kvcache.table.total"): f"{int(row.bytes_total):,}",
            tr("inference_kvcache.table.total_human"): human_bytes(row.bytes_total),
            tr("inference_kvcache.table.vs_mha"): f"{100 * row.vs_mha:.1f}%",
        })
    return pd.DataFrame(rows)


def memory_part() -> KVCacheSettings | None:
    lg = lang()
    outcome = cached_kvcache(memory_controls())
    show_outcome(outcome)
    result, used = outcome.result, outcome.settings
    if result is None:
        return None
    chart(memory_figure(result, lg, batch=used.batch, dtype=used.kv_dtype), "kv_memory")
    own = result.own
    cfg = result.cfg
    st.caption(tr("inference_kvcache.own_caption", model=model_label(lg, result.name),
                  layout=layout_name(lg, own.layout),
                  n_layer=cfg.n_layer, n_kv=own.kv_heads, d_head=cfg.d_head, bytes=int(own.bytes_per_token),
                  dtype=used.kv_dtype, per_token=human_bytes(own.bytes_per_token),
                  context=used.context, batch=used.batch, total=human_bytes(own.bytes_total)))
    if result.weights is not None:
        passes = result.context_where_cache_passes_weights(own.layout, used.batch)
        st.caption(tr("inference_kvcache.weights_caption", params=result.n_params, dtype=used.kv_dtype,
                      weights=human_bytes(result.weights), tokens=passes, batch=used.batch))
    st.dataframe(memory_table(result, lg), hide_index=True, width="stretch")
    mla = result.row("mla")
    with st.expander(tr("inference_kvcache.formulas")):
        st.latex(r"\text{MHA/GQA/MQA:}\quad 2 \cdot L \cdot n_{kv} \cdot d_h \cdot \text{bytes}"
                 r"\qquad \text{MLA:}\quad L \cdot (d_c + d_h^R) \cdot \text{bytes}")
        st.markdown(tr("inference_kvcache.formulas_text", d_c=result.kv_lora_rank, d_r=result.rope_dim,
                       ratio=100 * mla.vs_mha))
    return used


def paging_part(bytes_per_token: float | None, dtype: str) -> None:
    lg = lang()
    st.subheader(tr("inference_kvcache.paging.header"))
    st.caption(tr("inference_kvcache.paging.intro"))
    requested = paging_controls()
    overview = cached_paging(requested, None)
    show_outcome(overview)
    result, used = overview.result, overview.settings
    if result is None:
        return
    last = max(result.paged.steps, result.contiguous.steps) - 1
    # A select_slider keeps its value when its options change (a slider whose max moves starts again at 0); at most
    # MAX_STEP_OPTIONS stops, so a long run does not send thousands of options to the browser.
    stride = -(-(last + 1) // MAX_STEP_OPTIONS)
    options = tuple(range(0, last + 1, stride))
    VIEW.keep_valid("at_step", lambda v: v in options, min(options, key=lambda o: abs(o - min(last, AT_STEP))))
    at_step = st.select_slider(tr("inference_kvcache.control.at_step"), options, key=VIEW.key("at_step"))
    chart(paging_figure(result, lg, at_step=at_step), "kv_paging")
    paged, contiguous = result.paged, result.contiguous
    m = st.columns(4)
    m[0].metric(tr("inference_kvcache.metric.at_once"), tr("inference_kvcache.metric.vs", paged=paged.peak_running,
                                                           contiguous=contiguous.peak_running),
                help=tr("inference_kvcache.metric.at_once_help", regions=result.regions, max_len=used.max_len,
                        capacity=used.capacity))
    m[1].metric(tr("inference_kvcache.metric.utilisation"),
                tr("inference_kvcache.metric.pct_vs", paged=100 * paged.utilisation(),
                   contiguous=100 * contiguous.utilisation()),
                help=tr("inference_kvcache.metric.utilisation_help"))
    m[2].metric(tr("inference_kvcache.metric.makespan"), tr("inference_kvcache.metric.vs", paged=paged.steps,
                                                            contiguous=contiguous.steps),
                help=tr("inference_kvcache.metric.makespan_help",
                        paged=paged.mean_latency(result.requests), contiguous=contiguous.mean_latency(result.requests)))
    m[3].metric(tr("inference_kvcache.metric.preemptions"), paged.preemptions,
                help=tr("inference_kvcache.metric.preemptions_help"))
    if bytes_per_token is not None:
        st.caption(tr("inference_kvcache.paging.bytes", capacity=used.capacity, dtype=dtype,
                      per_token=human_bytes(bytes_per_token), pool=human_bytes(used.capacity * bytes_per_token),
                      gap=used.mean_gap))
    step_view = cached_paging(used, at_step).result
    left, right = st.columns(2)
    for col, trace in ((left, step_view.paged), (right, step_view.contiguous)):
        with col:
            if at_step in trace.snapshots:
                chart(pool_figure(trace.snapshots[at_step], trace, used.block_size, lg), f"kv_pool_{trace.system}")
                wasted, frag = int(trace.wasted[at_step]), int(trace.fragmentation[at_step])
                st.caption(tr(f"inference_kvcache.pool_caption.{trace.system}", used=int(trace.used[at_step]),
                              held=int(trace.reserved[at_step]), wasted=wasted, pending=int(trace.pending[at_step]),
                              frag=frag, waiting=int(trace.waiting[at_step])))
            else:
                st.caption(tr("inference_kvcache.pool_done", system=tr(f"inference_kvcache.system.{trace.system}"),
                              steps=trace.steps))
    snap = step_view.paged.snapshots.get(at_step)
    if snap is not None and snap.tables:
        with st.expander(tr("inference_kvcache.tables.header", step=at_step)):
            st.dataframe(pd.DataFrame([{
                tr("inference_kvcache.tables.request"): rid,
                tr("inference_kvcache.tables.tokens"): int(sum(snap.filled[b] for b in blocks)),
                tr("inference_kvcache.tables.blocks"): " ".join(map(str, blocks)),
            } for rid, blocks in sorted(snap.tables.items())]), hide_index=True, width="stretch")
    with st.expander(tr("inference_kvcache.paging.more")):
        st.markdown(tr("inference_kvcache.paging.explain"))


def render() -> None:
    show_problems(VIEW.open())
    memory = memory_part()
    bytes_per_token, dtype = None, K.kv_dtype
    if memory is not None:
        result = cached_kvcache(memory).result
        bytes_per_token, dtype = result.own.bytes_per_token, memory.kv_dtype
    paging_part(bytes_per_token, dtype)
    VIEW.publish()
