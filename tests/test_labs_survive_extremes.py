"""Whatever a student does to one control, the lab answers with content or a message, never a traceback.

Every slider, number box and text box of every lab is pushed, one at a time, to its extremes (for text: empty,
whitespace, a very long paste, odd characters), through the router as in the browser.
"""
import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.nav import LABS
from tests.conftest import ROOT

LONG_TEXT = "The quick brown fox jumps over the lazy dog. 今天天气很好。" * 60
ODD_TEXTS = ["", "   ", LONG_TEXT, "<script>alert(1)</script> {\"a\": [1, 2", "\x00\u200b😀 ∑ ¿"]


def _open(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    return at.switch_page(path).run()


def _extremes(widget) -> list:
    kind = type(widget).__name__
    if kind in ("Slider", "NumberInput"):
        lo, hi = widget.min, widget.max
        if isinstance(widget.value, (tuple, list)):
            return [(lo, lo), (hi, hi)] if lo is not None and hi is not None else []
        return [v for v in (lo, hi) if v is not None]
    if kind in ("TextInput", "TextArea"):
        return ODD_TEXTS
    return []


def _controls(at: AppTest) -> list:
    found = []
    for kind in ("slider", "number_input", "text_input", "text_area"):
        found += [w for w in getattr(at, kind) if w.key is not None]
    return found


@pytest.mark.parametrize("path", [lab.path for lab in LABS])
def test_every_control_at_its_extremes(path):
    at = _open(path)
    assert not at.exception, [e.value for e in at.exception]
    controls = [(type(w).__name__, w.key) for w in _controls(at)]
    assert controls, "the lab has controls to move"
    for kind, key in controls:
        at = _open(path)
        widget = next((w for w in _controls(at) if w.key == key), None)
        if widget is None or widget.disabled:
            continue
        for value in _extremes(widget):
            widget.set_value(value)
            at.run()
            assert not at.exception, f"{kind} {key} = {str(value)[:40]!r}: {[e.value for e in at.exception]}"
            widget = next((w for w in _controls(at) if w.key == key), None)
            if widget is None:
                break


@pytest.mark.parametrize("model", ["tiny-gpt", "smollm2-135m"])
@pytest.mark.parametrize("prompt", ODD_TEXTS, ids=["empty", "spaces", "long", "markup", "odd-chars"])
def test_generation_with_odd_prompts_answers_or_explains(model, prompt):
    at = _open("labs/generation.py")
    at.selectbox(key="generation.model").set_value(model)
    at.radio(key="generation.chat").set_value(False)
    at.slider(key="generation.max_new_tokens").set_value(3)
    at.text_area(key="generation.prompt").set_value(prompt).run()
    go = at.button(key="gen_go")
    if go.disabled:  # the page already said why nothing can be generated
        assert at.error or at.warning, "a disabled Generate button comes with a message"
        return
    go.click().run()
    assert not at.exception, [e.value for e in at.exception]
