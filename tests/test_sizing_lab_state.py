"""The sizing lab's state across interactions (AppTest): derived defaults follow the preset, an invalid model shows
its error and no numbers, and the n_kv_head choices follow n_head."""
import pytest
from streamlit.testing.v1 import AppTest

from explorer.presets import REAL_MODELS
from explorer.sizing import count_params, human_bytes, kv_cache_bytes
from tests.conftest import ROOT

PAGE = str(ROOT / "labs/sizing.py")
INFER_SEQ, TRAIN_SEQ = "Sequence length (prompt + generated)", "Sequence length"


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _widget(at, kind: str, label: str):
    found = [w for w in getattr(at, kind) if w.label == label]
    assert len(found) == 1, (label, [w.label for w in getattr(at, kind)])
    return found[0]


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _pick_preset(at, name: str) -> None:
    at.selectbox(key="sizing.preset").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]


def test_switching_preset_resets_the_sequence_lengths_to_the_new_model(at):
    gpt2 = REAL_MODELS["GPT-2 small"].cfg
    assert _widget(at, "number_input", INFER_SEQ).value == min(gpt2.max_seq_len, 4096)
    for name in ("LLaMA-7B", "Llama-3-8B", "BERT-base"):
        _pick_preset(at, name)
        cfg = REAL_MODELS[name].cfg
        assert _widget(at, "number_input", INFER_SEQ).value == min(cfg.max_seq_len, 4096), name
        assert _widget(at, "number_input", TRAIN_SEQ).value == min(cfg.max_seq_len, 2048), name
    _pick_preset(at, "LLaMA-7B")
    _widget(at, "number_input", INFER_SEQ).set_value(512).run()
    cfg = REAL_MODELS["LLaMA-7B"].cfg
    assert _metric(at, "KV cache") == human_bytes(kv_cache_bytes(cfg, 1, 512, "bf16"))
    _pick_preset(at, "Llama-3-8B")  # the student's 512 belonged to LLaMA-7B
    cfg = REAL_MODELS["Llama-3-8B"].cfg
    assert _widget(at, "number_input", INFER_SEQ).value == 4096
    assert _metric(at, "KV cache") == human_bytes(kv_cache_bytes(cfg, 1, 4096, "bf16"))


def test_the_models_to_compare_follow_the_preset(at):
    _pick_preset(at, "LLaMA-7B")  # GPT-2's default comparison held LLaMA-7B and left GPT-2 small out
    table = next(df.value for df in at.dataframe if "model" in df.value.columns and "d_ff" in df.value.columns)
    assert list(table["model"]) == ["LLaMA-7B", "GPT-2 small", "BERT-base", "Qwen-1.8B"]


@pytest.mark.parametrize("field, value, words", [
    ("n_head", 7, "divisible"),  # 768 / 7 with d_head derived
    ("d_model", -768, "at least 1"),
])
def test_an_invalid_model_shows_its_error_and_no_numbers(at, field, value, words):
    _pick_preset(at, "BERT-base")
    at.radio(key="sizing.source").set_value("fields").run()
    at.number_input(key=f"sizing.{field}").set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert not at.metric, [(m.label, m.value) for m in at.metric]  # BERT-base's totals used to stay on screen
    assert not at.get("plotly_chart")
    at.number_input(key=f"sizing.{field}").set_value(REAL_MODELS["BERT-base"].cfg.__dict__[field]).run()
    assert not at.error and _metric(at, "Exact parameters") == f"{REAL_MODELS['BERT-base'].total:,}"


def test_a_bad_config_json_shows_its_error_and_no_numbers(at):
    at.radio(key="sizing.source").set_value("config").run()
    at.text_area(key="config_text_GPT-2 small").set_value('{"model_type": "gpt2", "n_head": 7}').run()
    assert not at.exception
    assert any("divisible" in e.value for e in at.error)
    assert not at.metric and not at.get("plotly_chart")


def test_the_n_kv_head_choices_follow_n_head(at):
    at.radio(key="sizing.source").set_value("fields").run()
    at.number_input(key="sizing.n_head").set_value(16).run()
    kv = _widget(at, "selectbox", "K/V heads n_kv")
    assert [int(o.split()[0]) for o in kv.options] == [16, 8, 4, 2, 1]
    assert kv.value == 16  # GPT-2 is multi-head attention: it stays so
    kv.set_value(4).run()
    assert not at.exception and not at.error
    expected = REAL_MODELS["GPT-2 small"].cfg.replace(n_head=16, n_kv_head=4)
    assert _metric(at, "Exact parameters") == f"{count_params(expected).total:,}"
    at.number_input(key="sizing.n_head").set_value(12).run()
    assert [int(o.split()[0]) for o in _widget(at, "selectbox", "K/V heads n_kv").options] == [12, 6, 4, 3, 2, 1]
    assert not at.error
