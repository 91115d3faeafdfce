"""The sizing lab through AppTest: presets, edited fields and pasted config.json change what is shown; bad input
gets a sentence, never a traceback."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from explorer.presets import REAL_MODELS
from explorer.sizing import count_params
from tests.conftest import ROOT

PAGE = str(ROOT / "labs/sizing.py")


def _total(at) -> int:
    return int(at.metric[0].value.replace(",", ""))


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_preset_change_changes_the_total(at):
    first = _total(at)
    assert first == REAL_MODELS["GPT-2 small"].total
    at.selectbox(key="sizing.preset").set_value("LLaMA-7B").run()
    assert not at.exception
    assert _total(at) == REAL_MODELS["LLaMA-7B"].total != first
    assert at.metric[1].value == REAL_MODELS["LLaMA-7B"].published_label


def test_bert_pooler_checkbox_moves_the_total(at):
    at.selectbox(key="sizing.preset").set_value("BERT-base").run()
    with_pooler = _total(at)
    at.checkbox(key="sizing.pooler").uncheck().run()
    cfg = REAL_MODELS["BERT-base"].cfg
    assert _total(at) == count_params(cfg).total == with_pooler - (cfg.d_model ** 2 + cfg.d_model)


def test_editing_a_field_recounts_and_a_negative_size_is_explained(at):
    at.radio(key="sizing.source").set_value("fields").run()
    at.number_input(key="sizing.n_layer").set_value(6).run()
    assert not at.exception and not at.error
    cfg = REAL_MODELS["GPT-2 small"].cfg.replace(n_layer=6)
    assert _total(at) == count_params(cfg).total
    at.number_input(key="sizing.d_model").set_value(-768).run()
    assert not at.exception
    shown = [e.value.replace("\\", "") for e in at.error]  # the page escapes Markdown (explorer/safe_text.py)
    assert any("d_model" in e and "at least 1" in e for e in shown)
    assert not at.metric  # no totals of another model under the student's fields (tests/test_sizing_lab_state.py)


def test_pasted_config_json_is_counted_and_bad_json_shows_an_error(at):
    at.radio(key="sizing.source").set_value("config").run()
    box = at.text_area(key="config_text_GPT-2 small")
    hf = dict(REAL_MODELS["Llama-3-8B"].hf)
    box.set_value(json.dumps(hf)).run()
    assert not at.exception and not at.error
    assert _total(at) == REAL_MODELS["Llama-3-8B"].total
    at.text_area(key="config_text_GPT-2 small").set_value('{"model_type": "gpt2", "n_layer": 12,').run()
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)
    at.text_area(key="config_text_GPT-2 small").set_value('{"model_type": "mixtral"}').run()
    assert any("mixtral" in e.value and "not supported" in e.value for e in at.error)


def test_memory_and_compute_panels_follow_their_controls(at):
    def metric(label):
        return next(m.value for m in at.metric if m.label == label)

    per_gpu = metric("Per GPU")
    at.selectbox(key="sizing.zero_stage").set_value(3).run()
    assert metric("Per GPU") != per_gpu
    kv = metric("KV cache")
    at.number_input(key="sizing.batch").set_value(8).run()
    assert metric("KV cache") != kv
    at.number_input(key="sizing.batch").set_value(-2).run()
    assert any("batch" in e.value for e in at.error) and not at.exception
    days = metric("Time to train")
    at.slider(key="sizing.mfu").set_value(0.8).run()
    assert metric("Time to train") != days


def test_course_table_is_checked_on_the_page(at):
    frames = [df.value for df in at.dataframe]
    marked = next(f for f in frames if "preset" in f.columns and "Hidden_size" in f.columns)
    # every row's Hidden_size is d_ff: a right number under a wrong header, not a wrong value
    assert marked["Hidden_size"].str.endswith("is d_ff (wrong header)").all()
    assert any("d_ff" in w.value for w in at.warning)


def test_compare_tab_lists_the_chosen_models(at):
    at.multiselect(key="sizing.compare").set_value(["GPT-3 175B", "BERT-large"]).run()
    table = next(df.value for df in at.dataframe if "model" in df.value.columns and "d_ff" in df.value.columns)
    assert list(table["model"]) == ["GPT-2 small", "GPT-3 175B", "BERT-large"]


def test_every_preset_renders_with_its_exact_total(at):
    from explorer.labs.sizing import preset_config, preset_counts_pooler, preset_names
    for name in preset_names():
        at.selectbox(key="sizing.preset").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.error, (name, [e.value for e in at.error])
        expected = count_params(preset_config(name), pooler=preset_counts_pooler(name)).total
        assert _total(at) == expected, name


@pytest.mark.parametrize("name", ["GPT-2 small", "BERT-base", "Llama-3-8B", "teaching: original-transformer"])
def test_the_numbers_in_the_shown_formulas_add_up(name):
    import re

    from explorer.labs.sizing import preset_config
    from explorer.labs.sizing_tables import per_layer_latex, total_latex
    b = count_params(preset_config(name))

    def numbers(latex):
        return [int(x.replace("{,}", "")) for x in re.findall(r"\d+(?:\{,\}\d{3})*", latex)]

    layer = numbers(per_layer_latex(b)[1])
    assert sum(layer[:-1]) == layer[-1] == b.per_layer
    *terms, total = numbers(total_latex(b)[1])
    n_layer = b.cfg.n_layer
    # "L·(enc + dec)" for an encoder-decoder, "L·N_layer" otherwise: the layer count multiplies what follows it
    i = terms.index(n_layer, len(terms) - (3 if b.cfg.arch == "encoder-decoder" else 2))
    assert sum(terms[:i]) + n_layer * sum(terms[i + 1:]) == total == b.total


def test_uploaded_bytes_and_bad_uploads_resolve_with_a_sentence():
    import json as _json

    from explorer.labs.sizing import config_from_text
    ok = config_from_text(_json.dumps(REAL_MODELS["BERT-base"].hf).encode())
    assert ok.error is None and ok.cfg == REAL_MODELS["BERT-base"].cfg
    bad = config_from_text(b"\x89PNG\r\n")
    assert bad.cfg is None and "UTF-8" in bad.error
