"""The generation lab against what one student can do to it (issue 17 items 1, 2, 3, 8; issue 9 section 4): caps
stated and enforced before anything runs, the model's and the student's text shown as plain text, and the run's
state surviving a click that supersedes the script run in progress."""
from __future__ import annotations

import json
import re
import threading

import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer import limits
from explorer.config import ModelConfig
from explorer.generation import generate
from explorer.model import Transformer
from explorer.sampling import SamplingSettings
from explorer.models.tiny import ByteTokenizer, load_tiny
from explorer.ui.generation import LabState, text_markdown
from explorer.safe_text import escape_markdown
from tests.conftest import ROOT
from tests.pretrained_models import ours
from tests.test_generation_limits import GatedTokenizer

PAGE = str(ROOT / "labs/generation.py")
PAYLOAD = '![x](http://127.0.0.1:9/x.png) <img src="http://127.0.0.1:9/y.png"> **b** [l](http://127.0.0.1:9/) $x$'


def texts(at) -> list[str]:
    """Every Markdown body on the page: markdown, captions, alerts."""
    return [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
            for e in getattr(at, kind)]


# ---------------------------------------------------------------------------------------------------------------
# Caps, stated before anything runs.


@pytest.fixture
def at():
    return AppTest.from_file(PAGE, default_timeout=300).run()


def test_the_caps_are_stated_before_anything_runs(at):
    assert not at.exception
    assert limits.prompt_limits_note() in [c.value for c in at.caption]
    assert at.text_area(key="generation.prompt").max_chars == limits.GENERATION_PROMPT_MAX_CHARS
    assert at.slider(key="generation.max_new_tokens").max == limits.GENERATION_MAX_NEW_TOKENS
    assert at.session_state["generation_lab"].run is None  # nothing was computed to say so


def test_a_prompt_over_the_cap_is_refused_with_a_sentence(at):
    at.radio(key="generation.chat").set_value(False).run()
    prompt = "今天天气很好" * 150  # well within the box's characters, far over the tokens
    at.text_area(key="generation.prompt").input(prompt).run()
    n = len(ours("smollm2-135m").tokenizer.encode(prompt, add_special_tokens=False))
    assert n > limits.GENERATION_MAX_PROMPT_TOKENS
    assert not at.exception
    assert [e.value for e in at.error] == [escape_markdown(limits.prompt_too_long(n))]  # report_invalid escapes
    assert at.button(key="gen_go").disabled and at.button(key="gen_step").disabled


def test_a_run_without_the_cache_is_bounded_before_it_starts(at):
    at.toggle(key="generation.use_cache").set_value(False).run()
    at.slider(key="generation.max_new_tokens").set_value(limits.GENERATION_MAX_NEW_TOKENS).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Without the KV cache")
    assert at.button(key="gen_go").disabled
    at.toggle(key="generation.use_cache").set_value(True).run()
    assert not at.error and not at.button(key="gen_go").disabled


# ---------------------------------------------------------------------------------------------------------------
# The model's output and the prompt, as plain text.


def payload_writer(payload: str) -> tuple[Transformer, ByteTokenizer]:
    """A one-layer byte model whose greedy continuation of ``payload`` is ``payload`` again, whatever it says.

    Attention and FFN outputs are zero, so the last hidden state is LayerNorm(position embedding); with one-hot
    position embeddings, the unembedding row of byte b is hot at the positions where b must come next.
    """
    data = payload.encode()
    n = len(data)
    cfg = ModelConfig(n_layer=1, d_model=2 * n, n_head=1, vocab_size=256, max_seq_len=2 * n, positional="learned",
                      tie_embeddings=False)
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten below; leave the global RNG alone
        model = Transformer(cfg).eval().requires_grad_(False)
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            module.weight.zero_()
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    model.stack.embed.pos.weight.copy_(torch.eye(2 * n))
    for i, b in enumerate(data):
        model.lm_head.weight[b, n - 1 + i] = 1.0  # the hidden state at position n - 1 + i picks byte i
    return model, ByteTokenizer()


@pytest.fixture
def payload_run():
    model, tok = payload_writer(PAYLOAD)
    settings = SamplingSettings(greedy=True, max_new_tokens=len(PAYLOAD.encode()))
    run = generate(model, tok, PAYLOAD, settings, attention=True, stop_ids=[])
    list(run)
    assert run.text == PAYLOAD
    state = LabState()
    state.start(run, ("tiny-gpt", PAYLOAD, False, settings, True))
    return state


def test_generated_text_and_the_prompt_are_shown_as_plain_text(payload_run):
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["generation.model"] = "tiny-gpt"
    at.session_state["generation_lab"] = payload_run
    at.run()
    assert not at.exception
    shown = texts(at)
    assert text_markdown(PAYLOAD) in [m.value for m in at.markdown]  # the output, escaped
    assert "Plain completion of: " + escape_markdown(PAYLOAD) in [c.value for c in at.caption]
    for raw in ("![x](http", "**b**", "[l](http", "$x$"):
        assert not [t for t in shown if raw in t], f"{raw!r} reaches the page as Markdown"
    assert not [t for t in shown if re.search(r"(?<!\\)<img", t)], "an HTML tag reaches the page unescaped"


def _figure(at, title_start: str) -> dict:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {}).get("text", "")
        if title.startswith(title_start):
            return spec
    raise AssertionError(f"no figure titled {title_start!r}")


def test_the_whole_run_shows_quotes_and_brackets_as_typed(payload_run):
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["generation.model"] = "tiny-gpt"
    at.session_state["generation_lab"] = payload_run
    at.run()
    cells = [c for row in _figure(at, "The run, token by token")["data"][0]["text"] for c in row]
    assert not [c for c in cells if "&quot;" in c or "&#x27;" in c]  # plotly does not decode these: shown as typed
    assert '"' in cells and "&lt;" in cells  # a quote as itself; < escaped, which plotly decodes to <
    assert "<" not in cells  # raw it would open a tag in plotly's HTML subset


# ---------------------------------------------------------------------------------------------------------------
# A click that supersedes a script run still inside a step of the run (Streamlit's fast reruns).


@pytest.fixture(scope="module")
def tiny():
    return load_tiny("tiny-llama")


def _mid_step(tiny):
    """A run with one step done whose second step is being computed in another thread, held at a gate."""
    tok = GatedTokenizer(tiny.tokenizer)
    run = generate(tiny.model, tok, "hello", SamplingSettings(greedy=True, max_new_tokens=50))
    next(run)
    tok.armed = True
    errors: list = []

    def step():
        try:
            next(run)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    thread = threading.Thread(target=step)
    thread.start()
    assert tok.inside.wait(30)
    return run, tok, thread, errors


@pytest.mark.parametrize("action", ["start", "reset"])
def test_a_new_click_stops_a_run_that_is_mid_step(tiny, action):
    state = LabState()
    run, tok, thread, errors = _mid_step(tiny)
    state.start(run, ("tiny-llama", "hello"), stream=True)
    if action == "start":  # was: ValueError: generator already executing
        state.start(generate(tiny.model, tiny.tokenizer, "other", SamplingSettings(max_new_tokens=3)), ("b",))
    else:
        state.reset()
    tok.gate.set()
    thread.join(30)
    assert not errors and run.closed and len(run.steps) == 2
    assert next(run, None) is None  # the old run never steps again


def test_a_superseded_script_run_leaves_the_new_runs_state_alone(tiny):
    state = LabState()
    old = state.start(generate(tiny.model, tiny.tokenizer, "a", SamplingSettings(max_new_tokens=3)), ("a",),
                      stream=True)
    new = state.start(generate(tiny.model, tiny.tokenizer, "b", SamplingSettings(max_new_tokens=3)), ("b",),
                      stream=True)
    state.end_stream(old)  # the first script run, told to stop, runs on to its end_stream
    assert state.run is new and state.streaming is new
    assert state.interrupted() and state.stopped  # the next rerun sees the new stream was cut short
    state.end_stream(new)
    assert not state.interrupted()


def test_next_token_continues_the_run_or_starts_one_when_the_settings_changed(tiny):
    state = LabState()

    def new():
        return generate(tiny.model, tiny.tokenizer, "a", SamplingSettings(max_new_tokens=3))

    first, changed = state.run_to_step(("a",), new)
    assert not changed and state.run is first
    assert state.run_to_step(("a",), new) == (first, False)
    second, changed = state.run_to_step(("other",), new)
    assert changed and second is not first and first.closed
