"""The attention lab: its tokenizer and computations against torch / transformers references, and the page's
every control through AppTest."""
import base64
import json
import re
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

from explorer.config import MASKS
from explorer.labs.attention import (
    CORE_MASKS, MASK_CHOICES, AttentionSettings, attention_params, build_layer, lab_inputs, run, run_attention,
    sqrt_dk_study,
)
from explorer.model import KVCache, Transformer
from explorer.models.toy_tokens import (
    DEFAULT_SENTENCE, MAX_LAB_TOKENS, tokenize, tokenize_for_lab, toy_tokenizer,
)

SENTENCE = "The cat sat on the mat because it was tired"


# ---- tokenizer -------------------------------------------------------------------------------------------------

def test_empty_and_too_long_sentences_are_explained():
    with pytest.raises(ValueError, match="empty"):
        tokenize("   ")
    with pytest.raises(ValueError, match=f"more than the {MAX_LAB_TOKENS}"):
        tokenize("word " * (MAX_LAB_TOKENS + 1))
    empty = tokenize_for_lab("")
    assert empty.error and empty.tokens.text == DEFAULT_SENTENCE
    long_text = "word " * 50
    n = len(toy_tokenizer().encode(long_text))  # the tokenizer's own count, which the sentence must quote
    long = tokenize_for_lab(long_text)
    assert f"{n} tokens" in long.error and n > MAX_LAB_TOKENS and len(long.tokens) == MAX_LAB_TOKENS


def test_tokenizer_is_safe_from_many_threads():
    texts = [f"sentence number {i} about attention" for i in range(16)]
    expected = [tokenize(t) for t in texts]
    results = [None] * len(texts)

    def work(i):
        for _ in range(20):
            results[i] = tokenize(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


# ---- the layer against torch ------------------------------------------------------------------------------------

@torch.no_grad()
def torch_reference(tokens, settings):
    """The same layer through torch's own scaled_dot_product_attention."""
    cfg = settings.config()
    _, X, allowed = lab_inputs(tokens, settings)
    layer = build_layer(cfg, settings.seed)
    T = X.shape[0]
    q = F.linear(X, layer.W_q.weight, layer.W_q.bias).view(T, cfg.n_head, cfg.d_head).transpose(0, 1)
    k = F.linear(X, layer.W_k.weight, layer.W_k.bias).view(T, cfg.n_kv_head, cfg.d_head).transpose(0, 1)
    v = F.linear(X, layer.W_v.weight, layer.W_v.bias).view(T, cfg.n_kv_head, cfg.d_head).transpose(0, 1)
    scale = None if settings.scale else 1.0
    z = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=allowed, scale=scale,
                                       enable_gqa=cfg.n_kv_head != cfg.n_head)[0]  # (nh, T, dh)
    out = F.linear(z.transpose(0, 1).reshape(T, -1), layer.W_o.weight, layer.W_o.bias)
    return z, out


@pytest.mark.parametrize("settings", [
    AttentionSettings(),
    AttentionSettings(d_model=96, n_head=6, n_kv_head=2, mask="none", seed=3),
    AttentionSettings(d_model=64, n_head=8, n_kv_head=1, mask="padding", pad_len=3),
    AttentionSettings(d_model=32, n_head=2, mask="sliding_window", window=2, scale=False),
    AttentionSettings(d_model=48, n_head=4, mask="prefix", prefix_len=3, seed=7),
], ids=["causal-mha", "none-gqa", "padding-mqa", "window-unscaled", "prefix"])
def test_layer_matches_torch_sdpa(settings):
    tokens = tokenize(SENTENCE)
    result = run_attention(tokens, settings)
    z_ref, out_ref = torch_reference(tokens, settings)
    np.testing.assert_allclose(result.Z, z_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.output, out_ref.numpy(), atol=1e-5)
    # per-head contributions through W^O add up to the output (the bias is zero)
    np.testing.assert_allclose(result.head_outputs.sum(0), result.output, atol=1e-4)
    np.testing.assert_allclose(result.weights.sum(-1), 1.0, atol=1e-5)


def test_mha_weights_match_nn_multihead_attention():
    tokens = tokenize(SENTENCE)
    settings = AttentionSettings(d_model=64, n_head=4, mask="causal", seed=1)
    result = run_attention(tokens, settings)
    _, X, allowed = lab_inputs(tokens, settings)
    layer = build_layer(settings.config(), settings.seed)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([layer.W_q.weight, layer.W_k.weight, layer.W_v.weight]))
        mha.in_proj_bias.zero_()
        mha.out_proj.weight.copy_(layer.W_o.weight)
        mha.out_proj.bias.zero_()
        out, weights = mha(X[None], X[None], X[None], attn_mask=~allowed, average_attn_weights=False)
    np.testing.assert_allclose(result.weights, weights[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(result.output, out[0].numpy(), atol=1e-5)


def test_masks_hide_what_they_should():
    tokens = tokenize(SENTENCE)
    T = len(tokens)
    causal = run_attention(tokens, AttentionSettings(mask="causal")).weights
    assert np.all(np.triu(causal, 1) == 0) and np.all(np.diagonal(causal, axis1=1, axis2=2) > 0)
    none = run_attention(tokens, AttentionSettings(mask="none")).weights
    assert np.all(none > 0)
    padded = run_attention(tokens, AttentionSettings(mask="padding", pad_len=3))
    assert padded.tokens[-3:] == ("[PAD]",) * 3 and padded.weights.shape[-1] == T + 3
    assert np.all(padded.weights[..., T:] == 0) and np.all(padded.weights[..., :T] > 0)
    window = run_attention(tokens, AttentionSettings(mask="sliding_window", window=2)).weights
    assert np.all((window > 0).sum(-1) == np.minimum(np.arange(1, T + 1), 2))
    prefix = run_attention(tokens, AttentionSettings(mask="prefix", prefix_len=3)).weights
    assert np.all(prefix[:, :3, :3] > 0) and np.all(np.triu(prefix[:, 3:, :], 4) == 0)
    assert np.isneginf(run_attention(tokens, AttentionSettings(mask="causal")).M).sum() == T * (T - 1) // 2


def test_every_lab_mask_is_built_from_a_core_mask():
    assert set(CORE_MASKS) == set(MASK_CHOICES) and set(CORE_MASKS.values()) <= set(MASKS)


def test_scaling_switch_divides_by_sqrt_dk():
    tokens = tokenize(SENTENCE)
    on = run_attention(tokens, AttentionSettings(d_model=64, n_head=4, scale=True))
    off = run_attention(tokens, AttentionSettings(d_model=64, n_head=4, scale=False))
    np.testing.assert_allclose(on.QK, off.QK, atol=1e-5)
    np.testing.assert_allclose(on.scaled * math.sqrt(16), off.scaled, rtol=1e-5, atol=1e-5)


def test_invalid_settings_explain_and_fall_back():
    with pytest.raises(ValueError, match="divisible by n_head"):
        AttentionSettings(d_model=30, n_head=4).validate()
    with pytest.raises(ValueError, match="n_head must be a whole number from 1 to 16"):
        AttentionSettings(n_head=20).validate()
    with pytest.raises(ValueError, match="mask must be one of none, causal"):
        AttentionSettings(mask="diagonal").validate()
    tokens = tokenize(SENTENCE)
    outcome = run(tokens, AttentionSettings(d_model=30, n_head=4))
    assert "divisible" in outcome.error and outcome.settings.d_model == 32
    assert outcome.fallback == "Showing d_model = 32 instead."
    assert outcome.result.output.shape == (len(tokens), 32)
    outcome = run(tokens, AttentionSettings(d_model=64, n_head=8, n_kv_head=3))
    assert outcome.settings.n_kv_head == 2 and outcome.result.n_kv_head == 2 and outcome.result.kind == "GQA"
    outcome = run(tokens, AttentionSettings(n_head=20, mask="diagonal", seed=-1))
    assert outcome.settings == AttentionSettings(n_head=16, mask="causal", seed=0)
    assert outcome.fallback == "Showing n_head = 16, mask = causal, seed = 0 instead."
    fine = run(tokens, AttentionSettings())
    assert fine.ok and fine.fallback is None and fine.settings == AttentionSettings()
    np.testing.assert_array_equal(fine.result.weights, run_attention(tokens, AttentionSettings()).weights)


def test_sqrt_dk_study_shows_unscaled_softmax_saturating():
    tokens = tokenize(SENTENCE)
    study = sqrt_dk_study(tokens, AttentionSettings(mask="none"))
    assert study.max_weight_unscaled[-1] > 0.85 > study.max_weight_unscaled[0]
    assert study.entropy_unscaled[-1] < 0.5 * study.entropy_unscaled[0]
    # with the scaling the softmax keeps its shape: the entropy stays within 30% across d_k = 2 .. 512
    assert max(study.entropy_scaled) < 1.3 * min(study.entropy_scaled)
    # the unscaled scores' spread grows like sqrt(d_k): 512 / 8 = 64, sqrt = 8
    ratio = study.score_std_unscaled[-1] / study.score_std_unscaled[study.d_k.index(8)]
    assert 4 < ratio < 16
    sharp = run_attention(tokens, AttentionSettings(d_model=256, n_head=1, mask="none")).sharpness
    assert sharp.d_k == 256 and sharp.max_weight_unscaled > sharp.max_weight_scaled


def test_parameter_counts_match_torch_and_transformers():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention

    rows = {r.kind: r for r in attention_params(512, 8, 2)}
    assert sum(p.numel() for p in torch.nn.MultiheadAttention(512, 8).parameters()) == rows["MHA"].total
    for kind, n_kv in (("MHA", 8), ("GQA", 2), ("MQA", 1)):
        hf = LlamaAttention(LlamaConfig(hidden_size=512, num_attention_heads=8, num_key_value_heads=n_kv,
                                        attention_bias=True), layer_idx=0)
        assert sum(p.numel() for p in hf.parameters()) == rows[kind].total
        assert rows[kind].n_kv_head == n_kv


def test_kv_cache_bytes_match_a_real_cache():
    from explorer.config import ModelConfig
    for n_kv in (8, 2, 1):
        cfg = ModelConfig(d_model=64, n_head=8, n_kv_head=n_kv, n_layer=2, vocab_size=50)
        cache = KVCache(cfg.n_layer)
        Transformer(cfg)(torch.arange(10)[None], kv_cache=cache)
        row = next(r for r in attention_params(64, 8, n_kv) if r.n_kv_head == n_kv)
        assert cache.nbytes() == row.kv_cache_bytes_per_token(4) * 10 * cfg.n_layer


# ---- the page --------------------------------------------------------------------------------------------------

@pytest.fixture
def at():
    return AppTest.from_file(str(ROOT / "labs/attention.py"), default_timeout=120).run()


def key(name):
    """The widget key of one of the lab's controls (explorer.ui.url_state: '<lab>.<name>')."""
    from explorer.ui.attention import VIEW
    return VIEW.key(name)


def default_labels():
    """The axis labels of the default sentence, from its Tokens: the tokenizer decides how many there are."""
    from explorer.viz.heatmap import unique_labels
    return unique_labels(tokenize(DEFAULT_SENTENCE).tokens)


def figures(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def figure(at, title_start):
    found = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith(title_start)]
    assert found, f"no chart titled {title_start!r}"
    return found[0]


def show_step(at, step: str):
    """Pick one step of the step-by-step walk with its picker, as a click does (one step is drawn at a time)."""
    at.segmented_control(key=key("step")).set_value(step).run()
    no_errors(at)
    return at


def panel(fig, title: str) -> np.ndarray:
    """One panel of a two-panel step figure (its title is an annotation above it), as numbers."""
    names = [a["text"] for a in fig["layout"]["annotations"]]
    axis = ("x", "x2")[names.index(title)]
    return decode(next(d for d in fig["data"] if d.get("xaxis", "x") == axis and d.get("name") != "masked")["z"])


def z(fig, i=0):
    return decode(fig["data"][i]["z"])


def decode(value):
    """A plotly JSON array: a plain list, or numpy's bytes in base64 ({'dtype', 'bdata', 'shape'})."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")]).astype(float)
    return np.array([[np.nan if v is None else v for v in row] for row in value], dtype=float)


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_page_defaults(at):
    no_errors(at)
    assert not at.error and not at.warning
    assert at.text_input(key=key("sentence")).value == DEFAULT_SENTENCE
    assert figure(at, "X")["data"][0]["y"] == default_labels()
    assert len(figure(at, "Attention weights of all")["data"]) == 4
    assert at.latex, "formulas from the course next to the steps"
    # one step at a time: the grid and the first step's chart, nothing else
    assert [f["layout"]["title"]["text"] for f in figures(at)][1:] == ["X"]
    assert at.segmented_control(key=key("step")).value == "x" and "step" not in at.query_params
    assert not at.info, "the layer's summary is a caption, so the head grid stays on the first screen"


def test_heads_slider_changes_the_grid(at):
    at.slider(key=key("n_head")).set_value(2).run()
    no_errors(at)
    assert len(figure(at, "Attention weights of all")["data"]) == 2
    at.slider(key=key("n_head")).set_value(4).run()
    grid = figure(at, "Attention weights of all")
    assert len(grid["data"]) == 4
    assert "d_k = d_v = 16" in captions(at)


def test_causal_zeros_the_upper_triangle_and_none_does_not(at):
    show_step(at, "softmax")
    weights = z(figure(at, "attention weights (head 1)"))
    assert np.all(np.triu(weights, 1) == 0)
    at.selectbox(key=key("mask")).set_value("none").run()
    weights = z(figure(at, "attention weights (head 1)"))
    assert np.all(weights > 0)
    show_step(at, "mask")
    assert "-inf" not in json.dumps(figure(at, "M")["data"][0]["text"])


def test_padding_window_and_prefix_controls(at):
    at.text_input(key=key("sentence")).set_value(SENTENCE).run()  # long enough for a window and a prefix of 4
    show_step(at, "softmax")
    at.selectbox(key=key("mask")).set_value("padding").run()
    at.slider(key=key("pad_len")).set_value(3).run()
    no_errors(at)
    fig = figure(at, "attention weights (head 1)")
    assert fig["data"][0]["x"][-3:] == ["[PAD]", "[PAD] (2)", "[PAD] (3)"]
    assert np.all(z(fig)[:, -3:] == 0)
    at.selectbox(key=key("mask")).set_value("sliding_window").run()
    at.slider(key=key("window")).set_value(2).run()
    assert np.all((z(figure(at, "attention weights (head 1)")) > 0).sum(1) <= 2)
    at.selectbox(key=key("mask")).set_value("prefix").run()
    at.slider(key=key("prefix_len")).set_value(4).run()
    weights = z(figure(at, "attention weights (head 1)"))
    assert np.all(weights[:4, :4] > 0) and np.all(np.triu(weights[4:], 5) == 0)


def test_scaling_toggle(at):
    show_step(at, "scale")
    before = panel(figure(at, "Q Kᵀ  →  scaled scores"), "scaled scores")
    at.toggle(key=key("scale")).set_value(False).run()
    no_errors(at)
    pair = figure(at, "Q Kᵀ  →  scores")
    after = panel(pair, "scores")
    np.testing.assert_allclose(after, panel(pair, "Q Kᵀ"), atol=1e-6)
    np.testing.assert_allclose(after, before * 4, rtol=1e-4, atol=1e-4)  # d_k = 16
    assert any("Scaling is off" in m.value for m in at.markdown)


def test_kv_heads_zoom_seed_and_d_model(at):
    at.selectbox(key=key("n_kv_head")).set_value(2).run()
    assert "GQA" in captions(at)
    titles = [a["text"] for a in figure(at, "Attention weights of all")["layout"]["annotations"]]
    assert "head 4 · kv 2" in titles
    at.select_slider(key=key("zoom_4")).set_value(3).run()
    assert any(h.value == "Step by step, head 3" for h in at.header)
    assert at.segmented_control(key=key("step")).value == "x", "the step stays when the zoom moves"
    x_before = z(figure(at, "X"))
    at.number_input(key=key("seed")).set_value(5).run()
    assert not np.allclose(z(figure(at, "X")), x_before)
    at.number_input(key=key("d_model")).set_value(128).run()
    no_errors(at)
    assert z(figure(at, "X")).shape == (len(default_labels()), 64)  # first 64 of 128 columns
    assert "d_model = 128" in captions(at)


def test_moving_the_heads_keeps_mha_and_drops_an_impossible_kv_count(at):
    at.slider(key=key("n_head")).set_value(8).run()
    assert "MHA" in captions(at) and "8 key/value head(s)" in captions(at)  # MHA stays MHA: eight of its own
    at.selectbox(key=key("n_kv_head")).set_value(4).run()
    assert at.query_params["n_kv_head"] == "4" and "GQA" in captions(at)
    at.slider(key=key("n_head")).set_value(6).run()  # 4 does not divide 6: back to MHA, no exception
    no_errors(at)
    assert at.selectbox(key=key("n_kv_head")).options == ["6 · MHA", "3 · GQA", "2 · GQA", "1 · MQA"]
    assert "MHA" in captions(at) and "n_kv_head" not in at.query_params


def test_invalid_d_model_shows_an_error_and_a_fallback(at):
    at.number_input(key=key("d_model")).set_value(30).run()
    no_errors(at)
    # messages are Markdown-escaped (they may quote what the student typed): compare without the backslashes
    plain = lambda md: re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)  # noqa: E731
    assert any("divisible by n_head" in plain(e.value) for e in at.error)
    assert any("d_model = 32" in plain(w.value) for w in at.warning)
    assert len(figure(at, "Attention weights of all")["data"]) == 4


def test_empty_and_too_long_sentences(at):
    show_step(at, "softmax")
    at.text_input(key=key("sentence")).set_value("").run()
    no_errors(at)
    assert any("empty" in e.value for e in at.error)
    assert figure(at, "attention weights (head 1)")["data"][0]["x"] == default_labels()
    too_long = "attention " * 40
    at.text_input(key=key("sentence")).set_value(too_long).run()
    no_errors(at)
    n = len(tokenize(too_long, max_tokens=10 ** 6))
    assert n > MAX_LAB_TOKENS and any(f"{n} tokens" in e.value for e in at.error)
    assert len(figure(at, "attention weights (head 1)")["data"][0]["x"]) == MAX_LAB_TOKENS
    at.text_input(key=key("sentence")).set_value("the cat sat").run()
    assert not at.error
    from explorer.viz.heatmap import unique_labels
    assert figure(at, "attention weights (head 1)")["data"][0]["x"] == unique_labels(tokenize("the cat sat").tokens)


def open_tab(at, label: str):
    """Open one of the page's tabs, as a click on it does: its label becomes the tabs' value, and the page reruns."""
    at.session_state[key("section")] = label
    return at.run()


def test_sqrt_dk_and_parameter_sections_follow_the_config(at):
    # They are tabs beside the step by step, run only when open (the browser draws two charts and a table less
    # per change): one click away, not shown before it.
    assert [tab.label for tab in at.tabs] == ["Step by step", "Why divide by √d_k?",
                                              "Parameters and KV cache: MHA vs GQA vs MQA"]
    assert not [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Why divide")] and not at.dataframe
    open_tab(at, "Why divide by √d_k?")
    no_errors(at)
    stars = [d for d in figure(at, "Why divide")["data"] if d.get("name") == "this layer's heads"]
    assert stars[0]["x"][0] == 16
    assert not [f for f in figures(at) if f["layout"]["title"]["text"] == "X"], "the steps' tab is closed"
    at.slider(key=key("n_head")).set_value(8).run()
    stars = [d for d in figure(at, "Why divide")["data"] if d.get("name") == "this layer's heads"]
    assert stars[0]["x"][0] == 8
    open_tab(at, "Parameters and KV cache: MHA vs GQA vs MQA")
    table = at.dataframe[0].value
    assert list(table["kind"]) == ["MHA", "GQA", "MQA"]
    assert table["W^Q"].iloc[0] == 64 * 64 + 64


