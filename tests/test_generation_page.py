"""The generation lab through Streamlit's AppTest: generate, step, stop, measure, and bad input."""
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.greedy import assert_no_near_tie, margins
from tests.pretrained_models import ours

PAGE = str(ROOT / "labs/generation.py")


@pytest.fixture
def at():
    return AppTest.from_file(PAGE, default_timeout=300).run()


def caption_with(at, start: str) -> str:
    found = [c.value for c in at.caption if c.value.startswith(start)]
    assert found, f"no caption starting with {start!r}: {[c.value for c in at.caption]}"
    return found[0]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def shown_text(at) -> str:
    """The generated text as the page shows it (the markdown right after the mode caption)."""
    from explorer.ui.generation import text_markdown  # the page escapes Markdown in the model's output

    run = at.session_state["generation_lab"].run
    texts = [m.value for m in at.markdown]
    assert text_markdown(run.text) in texts, "the run's text is on the page"
    return run.text


def reads_label(at) -> str:
    """The label of the expander that shows what the model reads."""
    found = [e.label for e in at.expander if e.label.startswith("What the model reads")]
    assert len(found) == 1, [e.label for e in at.expander]
    return found[0]


def tiny(at, name="tiny-gpt"):
    at.selectbox(key="generation.model").select(name).run()
    return at


def test_opens_with_smollm2_and_no_run(at):
    assert not at.exception
    assert at.title[0].value == "Generation lab"
    assert at.latex, "the CLM formula is shown"
    assert "the 4-bit (Q4_1) release, dequantized to float32" in caption_with(at, "Trained weights")
    assert any("Press **Generate**" in m.value for m in at.markdown)
    assert caption_with(at, "Each new token's candidates"), "where the chart will be, before there is one"
    chat_tokens = reads_label(at)
    at.radio(key="generation.chat").set_value(False).run()
    assert reads_label(at) != chat_tokens  # the chat template adds its own tokens around the message


def test_smollm2_greedy_chat_answers(at):
    at.radio(key="generation.greedy").set_value(True).run()
    at.button(key="gen_go").click().run()
    assert not at.exception
    run = at.session_state["generation_lab"].run
    pm = ours("smollm2-135m")  # the same weights and layout as the page's
    # No near tie on the way: this answer, and the browser test's, is the same on every CPU and thread count.
    assert_no_near_tie(margins(pm.model, pm.config, run.prompt.ids, run.token_ids))
    assert "Paris" in shown_text(at)
    assert caption_with(at, "Finished after").endswith("the model chose its end-of-text token.")
    assert int(metric(at, "Tokens generated")) < 32
    assert len(at.get("plotly_chart")) >= 4  # candidates, attention, timeline, entropy


def test_tiny_model_generates_and_the_seed_decides(at):
    tiny(at)
    assert any("no chat template" in w.value for w in at.warning)
    at.slider(key="generation.max_new_tokens").set_value(12).run()
    at.button(key="gen_go").click().run()
    assert not at.exception
    first = at.session_state["generation_lab"].run.token_ids
    assert len(first) == 12 and metric(at, "Tokens generated") == "12"
    assert caption_with(at, "Finished after 12 tokens")
    at.number_input(key="generation.seed").set_value(1).run()
    at.button(key="gen_go").click().run()
    other = at.session_state["generation_lab"].run.token_ids
    assert other != first
    at.number_input(key="generation.seed").set_value(0).run()
    at.button(key="gen_go").click().run()
    assert at.session_state["generation_lab"].run.token_ids == first
    shown_text(at)


def test_step_mode_one_token_per_click(at):
    tiny(at, "tiny-llama")
    for n in (1, 2, 3):
        at.button(key="gen_step").click().run()
        assert caption_with(at, f"Paused after {n} tokens")
    assert at.slider(key="gen_inspect_1_3").value == 3  # the newest token is inspected
    before = at.session_state["generation_lab"].run
    at.slider(key="generation.temperature").set_value(1.5).run()
    at.button(key="gen_step").click().run()
    assert any("a new run starts" in i.value for i in at.info)
    assert at.session_state["generation_lab"].run is not before
    assert caption_with(at, "Paused after 1 tokens")


def test_stop_mid_stream_keeps_what_was_written(at):
    tiny(at)
    at.button(key="gen_step").click().run()
    at.button(key="gen_step").click().run()
    assert at.button(key="gen_stop").disabled  # only live while text is being written
    # Pressing Stop mid-stream makes Streamlit abandon the running script and rerun: the rerun then finds a stream
    # that never reached its end. (The real click is in tests/browser/test_generation_browser.py.)
    at.session_state["generation_lab"].streaming = True
    at.run()
    assert any(w.value.startswith("Stopped after 2 tokens") for w in at.warning)
    at.button(key="gen_step").click().run()  # carries on from where it stopped
    assert caption_with(at, "Paused after 3 tokens")


def test_kv_cache_panel_measures_this_run(at):
    tiny(at)
    at.slider(key="generation.max_new_tokens").set_value(8).run()
    at.button(key="gen_go").click().run()
    assert not [m for m in at.metric if m.label.startswith("KV cache")]
    at.button(key="gen_measure").click().run()
    assert not at.exception
    on, off = float(metric(at, "KV cache on (tokens/s)")), float(metric(at, "KV cache off (tokens/s)"))
    assert on > 0 and off > 0
    assert metric(at, "Speed-up from the cache").endswith("×")


def test_bad_prompts_are_explained(at):
    at.text_area(key="generation.prompt").input("   ").run()
    assert any("Type a prompt first" in e.value for e in at.error)
    assert at.button(key="gen_go").disabled and at.button(key="gen_step").disabled
    tiny(at)
    at.text_area(key="generation.prompt").input("a" * 200).run()
    assert any("200 tokens long but this model reads at most 128" in e.value for e in at.error)
    assert not at.exception


def test_reset_clears_the_run(at):
    tiny(at)
    at.button(key="gen_step").click().run()
    at.button(key="gen_reset").click().run()
    assert at.session_state["generation_lab"].run is None
    assert any("Press **Generate**" in m.value for m in at.markdown)


def test_the_kv_cache_caption_counts_this_models_values_per_token(at):
    tiny(at, "tiny-llama")  # grouped-query attention: fewer key/value heads than query heads
    at.slider(key="generation.max_new_tokens").set_value(4).run()
    at.button(key="gen_go").click().run()
    at.button(key="gen_measure").click().run()
    cfg = at.session_state["generation_lab"].run.model.cfg
    assert cfg.n_kv_head < cfg.n_head
    assert any(f"({cfg.kv_values_per_token} for this model)" in c.value for c in at.caption)


def test_a_refused_run_still_shows_what_the_model_reads(at):
    tiny(at)
    at.radio(key="generation.chat").set_value(False).run()
    at.text_area(key="generation.prompt").input("x" * 100).run()
    at.toggle(key="generation.use_cache").set_value(False).run()
    at.slider(key="generation.max_new_tokens").set_value(200).run()
    assert [e.value for e in at.error] and at.error[0].value.startswith("Without the KV cache")
    assert reads_label(at).startswith("What the model reads: 100 tokens")
    assert at.button(key="gen_go").disabled and at.button(key="gen_step").disabled



def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def _keys(node) -> list:
    return [getattr(e, "key", None) for e in _walk(node) if not getattr(e, "children", None)]


def test_the_newest_tokens_candidates_open_the_column_beside_the_prompt_and_the_answer(at):
    """The layout the first-screen browser check relies on: once a token is written, its candidates chart is the
    page's first chart and opens the column beside the prompt, the buttons and the answer, not below them."""
    tiny(at).button(key="gen_step").click().run()
    rows = [n for n in _walk(at.main) if [getattr(c, "type", None) for c in getattr(n, "children", {}).values()]
            == ["column", "column"]]
    left, right = next(list(r.children.values()) for r in rows if "gen_go" in _keys(r))
    assert {"generation.prompt", "gen_go", "gen_step", "gen_stop"} <= set(_keys(left))
    assert [e.value for e in _walk(left) if getattr(e, "type", None) == "caption"
            and e.value.startswith("Paused after 1 tokens")], "the answer box, with its status, is on the left"
    charts = [e for e in _walk(at.main) if getattr(e, "type", None) == "plotly_chart"]
    assert charts[0].key == "gen_candidates" and "Token 1: picked" in charts[0].proto.spec
    assert _keys(right)[0] == "gen_candidates", _keys(right)
