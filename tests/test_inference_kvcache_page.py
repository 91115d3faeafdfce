"""The KV-cache tab as the inference page shows it: the controls move the charts and the address, two links open
their views, bad values are named and replaced, and the tab in 中文."""

from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.inference_kvcache import KVCacheSettings, PagingSettings, kv_memory, serve
from explorer.sizing import human_bytes
from tests.apptest_helpers import captions as _captions, figure as _figure, ok as _ok, open_page, through_router

KEY = "inference_kvcache.{}".format


def _page(**query) -> AppTest:
    return open_page("labs/inference.py", 90, **{"tab": "kvcache", **query})


def _through_router(**query) -> AppTest:
    return through_router("labs/inference.py", 90, **{"tab": "kvcache", **query})


def _title(at: AppTest, key: str) -> str:
    return _figure(at, key)["layout"]["title"]["text"]


def test_the_default_view_draws_memory_and_paging():
    at = _ok(_page())
    assert _title(at, "kv_memory") == t("en", "inference_kvcache.viz.memory_title", model="SmolLM2-135M", batch=1,
                                        dtype="bf16")
    table = at.dataframe[0].value
    assert len(table) == 4 and table.iloc[1, 0].endswith("✓")  # GQA is SmolLM2's own
    own = kv_memory(KVCacheSettings()).own
    assert table.iloc[1, 3] == f"{int(own.bytes_per_token):,}" and human_bytes(own.bytes_total) in _captions(at)
    result = serve(PagingSettings(), (120,))
    assert _title(at, "kv_pool_paged") == t("en", "inference_kvcache.viz.pool_title",
                                            system=t("en", "inference_kvcache.system.paged"), step=120)
    paged = result.paged
    assert t("en", "inference_kvcache.pool_caption.paged", used=int(paged.used[120]), held=int(paged.reserved[120]),
             wasted=int(paged.wasted[120]), pending=int(paged.pending[120]), frag=int(paged.fragmentation[120]),
             waiting=int(paged.waiting[120])) in _captions(at)
    assert at.metric[0].value == t("en", "inference_kvcache.metric.vs", paged=result.paged.peak_running,
                                   contiguous=result.contiguous.peak_running)
    assert dict(at.query_params) == {"tab": "kvcache"}


def test_moving_the_controls_redraws_and_writes_the_address():
    at = _ok(_page())
    at.selectbox(key=KEY("preset")).set_value("Llama-2-70B").run()
    at.select_slider(key=KEY("batch")).set_value(8).run()
    _ok(at)
    assert _title(at, "kv_memory") == t("en", "inference_kvcache.viz.memory_title", model="Llama-2-70B", batch=8,
                                        dtype="bf16")
    at.select_slider(key=KEY("block_size")).set_value(32).run()
    at.select_slider(key=KEY("at_step")).set_value(60).run()
    _ok(at)
    assert dict(at.query_params) == {"tab": "kvcache", "preset": "Llama-2-70B", "batch": "8", "block_size": "32",
                                     "at_step": "60"}
    assert "step 60" in _title(at, "kv_pool_paged")
    at.select_slider(key=KEY("max_len")).set_value(256).run()
    assert at.select_slider(key=KEY("at_step")).value == 60, "the step shown stays while the server changes"
    at.slider(key=KEY("pool_blocks")).set_value(8).run()  # 8 blocks of 32 = 256 slots: one request of 256
    assert at.slider(key=KEY("pool_blocks")).value == 8 and not at.error
    at.selectbox(key=KEY("preset")).set_value("custom").run()
    assert at.number_input(key=KEY("n_head")).value == KVCacheSettings().n_head  # the custom shape's controls


def test_a_custom_model_link():
    query = dict(preset="custom", n_layer="24", n_head="12", n_kv_head="4", d_head="64", kv_dtype="fp16",
                 context="4096", batch="4")
    at = _ok(_page(**query))
    assert at.selectbox(key=KEY("preset")).value == "custom" and at.selectbox(key=KEY("n_kv_head")).value == 4
    assert at.number_input(key=KEY("n_layer")).value == 24 and at.select_slider(key=KEY("batch")).value == 4
    assert not at.warning
    assert dict(at.query_params) == {"tab": "kvcache", **query}
    expected = kv_memory(KVCacheSettings(preset="custom", n_layer=24, n_head=12, n_kv_head=4, d_head=64,
                                         kv_dtype="fp16", context=4096, batch=4)).own
    assert own_row(at) == ("GQA ✓", int(expected.bytes_per_token)) and expected.bytes_per_token == 2 * 24 * 4 * 64 * 2


def own_row(at):
    table = at.dataframe[0].value
    row = table[table.iloc[:, 0].str.endswith("✓")].iloc[0]
    return row.iloc[0], int(row.iloc[3].replace(",", ""))


def test_a_paging_link():
    query = dict(block_size="8", pool_blocks="64", max_len="256", n_requests="10", seed="3", at_step="40")
    at = _ok(_page(**query))
    assert at.select_slider(key=KEY("block_size")).value == 8 and at.slider(key=KEY("pool_blocks")).value == 64
    assert at.select_slider(key=KEY("at_step")).value == 40 and at.number_input(key=KEY("seed")).value == 3
    assert dict(at.query_params) == {"tab": "kvcache", **query}
    result = serve(PagingSettings(8, 64, 256, 10, 3), (40,))
    assert at.metric[2].value == t("en", "inference_kvcache.metric.vs", paged=result.paged.steps,
                                   contiguous=result.contiguous.steps)
    assert "step 40" in _title(at, "kv_pool_contiguous")


def test_bad_values_are_named_and_replaced():
    at = _ok(_page(block_size="7", n_requests="500"))
    warnings = " ".join(str(w.value) for w in at.warning).replace("\\", "")  # markdown-escaped on the page
    assert "block_size" in warnings and "n_requests" in warnings
    assert at.select_slider(key=KEY("block_size")).value == 16 and at.slider(key=KEY("n_requests")).value == 24
    at = _ok(_page(preset="custom", n_head="12", n_kv_head="5"))
    assert any("n_kv_head" in str(w.value).replace("\\", "") for w in at.warning)
    assert 12 % at.selectbox(key=KEY("n_kv_head")).value == 0


def test_the_tab_in_chinese():
    at = _ok(_through_router(lang="zh", preset="Llama-3-8B"))
    assert _title(at, "kv_memory") == t("zh", "inference_kvcache.viz.memory_title", model="Llama-3-8B", batch=1,
                                        dtype="bf16")
    assert at.selectbox(key=KEY("preset")).label == t("zh", "inference_kvcache.control.preset")
    assert any(h.value == t("zh", "inference_kvcache.paging.header") for h in at.subheader)
    assert t("zh", "inference_kvcache.viz.paging_title") == _title(at, "kv_paging")
    assert at.query_params["lang"] == ["zh"] or at.query_params["lang"] == "zh"
