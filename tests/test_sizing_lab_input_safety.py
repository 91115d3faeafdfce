"""Untrusted config.json text in the sizing lab (AppTest; issue 17 items 3 and 4): a file of brackets gets a
sentence, not a RecursionError, and the student's values are never read as Markdown or HTML."""
import json
import re
import string

import pytest
from streamlit.testing.v1 import AppTest

from explorer.presets import REAL_MODELS
from tests.conftest import ROOT

PAGE = str(ROOT / "labs/sizing.py")
IMAGE = "![x](http://127.0.0.1:9/md-img.png)"


@pytest.fixture
def at():
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    app.radio(key="sizing.source").set_value("config").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _paste(at, text: str) -> None:
    at.text_area(key="config_text_GPT-2 small").set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]


def _unescaped_punctuation(md: str) -> set[str]:
    """ASCII punctuation in a Markdown body that no backslash turns into a literal character."""
    return set(re.sub(r"\\[!-/:-@\[-`{-~]", "", md)) & set(string.punctuation)


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, "{" * 5000, '{"a": ' * 2000 + "1" + "}" * 2000])
def test_deeply_nested_json_gets_a_sentence(at, text):
    _paste(at, text)
    assert [e for e in at.error if "nested" in e.value], [e.value for e in at.error]
    assert not at.metric


@pytest.mark.parametrize("field", ["n_layer", "model_type", "activation_function"])
def test_markdown_in_a_value_is_shown_as_text(at, field):
    hf = dict(REAL_MODELS["GPT-2 small"].hf, **{field: IMAGE})
    _paste(at, json.dumps(hf))
    assert at.error, "a bad value must be explained"
    for e in at.error:
        assert not _unescaped_punctuation(e.value), e.value
        as_read = re.sub(r"\\(.)", r"\1", e.value).replace("\u2060", "")  # the word joiner breaks autolinks
        assert as_read.count(IMAGE) == 1  # the value is quoted, as typed


def test_a_model_name_with_html_is_shown_as_text_in_the_charts(at):
    name = '<b>mine</b><a href="http://127.0.0.1:9/">x</a>'
    _paste(at, json.dumps(dict(REAL_MODELS["GPT-2 small"].hf, n_layer=6, _name_or_path=name)))
    assert not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    shown = json.dumps([s["layout"].get("title", {}).get("text", "") for s in specs]
                       + [t.get("x") for s in specs for t in s["data"] if t.get("type") == "bar"])
    assert "&lt;b&gt;mine&lt;/b&gt;" in shown and "<b>" not in shown and "<a " not in shown
