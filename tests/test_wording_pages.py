"""The corrected sentences of issue 9 (section 3) are the ones the pages show: each page is run with AppTest and
its text compared with what the library computes."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "success", "latex", "header",
                                  "subheader") for e in at.get(kind)]
    parts += [e.proto.body for e in at.get("expandable") if hasattr(e.proto, "body")]
    return "\n".join(str(p) for p in parts)


# ---- sizing lab -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sizing() -> AppTest:
    return _page("labs/sizing.py")


def test_sizing_page_quotes_the_computed_swiglu_ratios(sizing):
    from explorer.presets import swiglu_ratio_caption
    assert swiglu_ratio_caption() in [c.value for c in sizing.caption]
    assert "about 8/3·d instead of 4·d" not in _texts(sizing)


def test_sizing_page_lists_the_notes_errors_and_the_gpt3_row(sizing):
    from explorer.course_tables import NOTES_ERRORS
    text = _texts(sizing)
    for e in NOTES_ERRORS:
        assert e.quote in text and e.correction in text, e.quote
    frames = [df.value for df in sizing.dataframe]
    assert any("GPT-3" in list(f.get("模型", [])) and "hidden_layers（隐藏层数）" in f.columns for f in frames)
    marked = next(f for f in frames if "preset" in f.columns and "Hidden_size" in f.columns)
    assert marked["Hidden_size"].str.contains("header").all() and marked["注意力维度"].str.startswith("✓").all()


def test_sizing_page_counts_gpu_memory_in_gib_and_names_the_logits(sizing):
    from explorer.presets import REAL_MODELS
    from explorer.sizing import GPUS, human_bytes, logits_bytes
    at = sizing
    assert all("GiB" in o for o in at.selectbox(key="sizing.gpu").options)
    text = _texts(at)
    assert "80 GiB (85.9 GB)" in text  # the default card, A100
    cfg = REAL_MODELS["GPT-2 small"].cfg
    seq = at.number_input(key="sizing.train_seq_len").value
    micro = at.number_input(key="sizing.micro_batch").value
    assert human_bytes(logits_bytes(cfg, micro, seq)) in text and "4·s·b·V" in text
    assert list(GPUS)[1] == at.selectbox(key="sizing.gpu").value


# ---- positional lab ---------------------------------------------------------------------------------------------

def _chart(at: AppTest, key: str) -> dict:
    import json
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


@pytest.fixture(scope="module")
def positional() -> AppTest:
    return _page("labs/positional.py")


def test_positional_sinusoidal_is_defined_everywhere_but_does_not_extrapolate(positional):
    at = positional
    at.sidebar.radio(key="positional.positional").set_value("sinusoidal").run()
    text = _texts(at)
    assert "works for positions never seen" not in text
    assert "defined for every position" in text and "does not extrapolate" in text


def test_positional_learned_table_says_gpt2_sigma(positional):
    from explorer.positional_facts import GPT2_POSITION_INIT_STD, GPT2_TOKEN_INIT_STD
    at = positional
    at.sidebar.radio(key="positional.positional").set_value("learned").run()
    text = _texts(at)
    assert f"σ = {GPT2_POSITION_INIT_STD:g}" in text and f"σ = {GPT2_TOKEN_INIT_STD:g}" in text
    assert "N(0, 0.02)" not in text


@pytest.mark.parametrize("heads", [8, 12])
def test_positional_alibi_caption_follows_the_head_count(positional, heads):
    from explorer.positional_facts import alibi_rule
    at = positional
    at.sidebar.radio(key="positional.positional").set_value("alibi").run()
    at.sidebar.slider(key="positional.alibi_heads").set_value(heads).run()
    assert not at.exception
    rule = alibi_rule(heads)
    assert rule.text in _texts(at)
    assert _chart(at, "slopes")["layout"]["title"]["text"] == rule.title


def test_positional_rope_caption_says_when_the_decay_holds(positional):
    from explorer.positional_facts import rope_decay_facts
    from explorer.labs.positional import rope_score_by_distance
    at = positional
    at.sidebar.radio(key="positional.positional").set_value("rope").run()
    for theta in (10.0, 10_000.0):
        at.sidebar.select_slider(key="positional.theta").set_value(theta).run()
        d_head = at.sidebar.select_slider(key="positional.d_head").value
        seed = at.sidebar.number_input(key="positional.seed").value
        facts = rope_decay_facts(rope_score_by_distance(d_head, theta, 128, seed), theta, d_head)
        assert facts.text in _texts(at)
    assert "decays with distance (RoPE's long-term decay)" not in _texts(at)


def test_positional_none_tab_says_the_layer_is_bidirectional(positional):
    at = positional
    at.sidebar.radio(key="positional.positional").set_value("none").run()
    text = _texts(at)
    assert "bidirectional" in at.header[0].value or any("bidirectional" in h.value for h in at.header)
    assert "causal mask" in text and "NoPE" in text


# ---- internals lab (loads SmolLM2) ------------------------------------------------------------------------------

@pytest.mark.slow
def test_internals_page_captions_are_computed_from_its_run():
    from explorer.labs.internals import MAX_TOKENS
    from explorer.labs.internals_facts import logit_lens_facts, residual_norm_facts, residual_norms
    from explorer.labs.internals_passes import analyze, logit_lens
    from explorer.models.quantization import smollm2_weights
    from tests.pretrained_models import ours
    at = _page("labs/internals.py")
    pm = ours("smollm2-135m")
    run = analyze(pm, pm.encode(at.text_area(key="internals.text").value, max_tokens=MAX_TOKENS))
    text = _texts(at)
    assert residual_norm_facts(residual_norms(run), run.labels, run.patterns).text in text
    assert logit_lens_facts(logit_lens(pm, run), run.ids).text in text
    assert smollm2_weights().note in text and "published weights" not in text
    assert "upper half" not in text and "hundreds of times longer than the others a few layers in" not in text
    assert r"I = \{i : n_i > 1\}" in text  # the entropy averages only over queries that see more than one key


@pytest.mark.slow
def test_generation_page_says_smollm2_is_the_4_bit_release():
    from explorer.models.quantization import smollm2_weights
    at = _page("labs/generation.py")
    assert "4-bit Q4_1" in at.selectbox(key="generation.model").options[0]
    assert smollm2_weights().note in _texts(at)


# ---- home page and navigation -----------------------------------------------------------------------------------

def test_home_shows_pre_and_post_norm_indexed_by_sub_layer():
    from explorer.presets import norm_placements
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    latex = [e.value for e in at.latex]
    assert any(r"\mathrm{LayerNorm}\big(x_k + F_k(x_k)\big)" in x for x in latex)  # post-LN
    assert any(r"x_k + F_k\big(\mathrm{Norm}(x_k)\big)" in x for x in latex)  # pre-LN
    assert not any("x_{l+1}" in x for x in latex)  # one index per sub-layer, not per layer
    text = _texts(at)
    for names in norm_placements().values():
        assert ", ".join(names) in text


def test_nav_blurbs_say_what_the_labs_really_show():
    from explorer.ui.nav import LABS
    blurbs = {lab.url_path: lab.blurb for lab in LABS}
    assert "bidirectional" in blurbs["positional"]
    assert "4-bit" in blurbs["internals"] and "4-bit" in blurbs["generation"]
