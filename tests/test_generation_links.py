"""The generation lab from links and in Chinese: every setting under its GenerationSettings name in the address
(``?temperature=1.2&top_k=20&max_new_tokens=40``), never a run in progress; a bad value named and replaced by the
default; and the whole page, figures and the library's sentences included, in 中文 from ``?lang=zh``."""

from streamlit.testing.v1 import AppTest

from explorer.i18n import render, t
from explorer.labs.generation import DEFAULT_PROMPT, GenerationSettings
from explorer.safe_text import escape_markdown
from tests.apptest_helpers import chart_titles as _titles, ok as _ok, open_page, texts, through_router
from tests.conftest import shown_text

KEY = "generation.{}".format
PAGE = "labs/generation.py"


def _page(**query) -> AppTest:
    return _ok(open_page(PAGE, 300, **query))


def _through_router(**query) -> AppTest:
    return _ok(through_router(PAGE, 300, **query))


def _texts(at: AppTest) -> list[str]:
    return texts(at, ("markdown", "caption", "info", "warning", "error"))


def test_a_sampling_link_opens_that_view_and_a_run_leaves_the_address_alone():
    query = dict(model="tiny-gpt", temperature="1.2", top_k="20", top_p="0.8", max_new_tokens="40", seed="7")
    at = _page(**query)
    assert at.selectbox(key=KEY("model")).value == "tiny-gpt"
    assert at.slider(key=KEY("temperature")).value == 1.2 and at.slider(key=KEY("top_k")).value == 20
    assert at.slider(key=KEY("top_p")).value == 0.8 and at.slider(key=KEY("max_new_tokens")).value == 40
    assert at.number_input(key=KEY("seed")).value == 7
    assert at.radio(key=KEY("greedy")).value is False and at.toggle(key=KEY("use_cache")).value is True
    fallback = t("en", "generation.lab.no_chat_template", model="tiny-gpt")
    assert [w.value for w in at.warning] == [escape_markdown(fallback)]
    assert dict(at.query_params) == query
    at.button(key="gen_go").click().run()
    _ok(at)
    run = at.session_state["generation_lab"].run
    assert (run.settings.temperature, run.settings.top_k, run.settings.top_p, run.settings.seed) == (1.2, 20, 0.8, 7)
    assert len(run.steps) == 40
    assert dict(at.query_params) == query, "a run is not part of the view's address"


def test_a_moved_control_writes_the_address_and_the_default_leaves_it():
    at = _page()
    assert dict(at.query_params) == {}
    at.radio(key=KEY("chat")).set_value(False).run()
    at.text_area(key=KEY("prompt")).input("今天天气").run()
    at.slider(key=KEY("repetition_penalty")).set_value(1.3).run()
    at.toggle(key=KEY("use_cache")).set_value(False).run()
    assert dict(at.query_params) == {"chat": "0", "prompt": "今天天气", "repetition_penalty": "1.3", "use_cache": "0"}
    at.text_area(key=KEY("prompt")).input(DEFAULT_PROMPT).run()
    at.slider(key=KEY("repetition_penalty")).set_value(1.0).run()
    assert dict(at.query_params) == {"chat": "0", "use_cache": "0"}


def test_bad_values_in_a_link_are_named_and_replaced_by_the_defaults():
    at = _page(top_k="999", temperature="warm", model="gpt-5", max_new_tokens="12")
    defaults = GenerationSettings()
    warnings = " ".join(shown_text(w.value) for w in at.warning)
    for name, value in (("top_k", "999"), ("temperature", "warm"), ("model", "gpt-5")):
        assert f"“{name}”" in warnings and repr(value) in warnings
    assert at.slider(key=KEY("top_k")).value == defaults.top_k
    assert at.slider(key=KEY("temperature")).value == defaults.temperature
    assert at.selectbox(key=KEY("model")).value == defaults.model
    assert at.slider(key=KEY("max_new_tokens")).value == 12, "the good values of the link are kept"
    assert dict(at.query_params) == {"max_new_tokens": "12"}, "the address no longer carries the bad values"


def test_a_chinese_chat_link_opens_in_chinese_and_steps_in_chinese():
    prompt = "请用一句话介绍北京"
    at = _through_router(lang="zh", prompt=prompt, greedy="1", max_new_tokens="8")
    assert at.title[0].value == t("zh", "generation.title")
    assert at.text_area(key=KEY("prompt")).value == prompt and at.text_area(key=KEY("prompt")).label == "提示词"
    assert at.radio(key=KEY("chat")).value is True and at.radio(key=KEY("greedy")).value is True
    assert at.radio(key=KEY("greedy")).options == ["采样", "贪心解码"]
    assert at.slider(key=KEY("max_new_tokens")).value == 8
    assert at.query_params["lang"] == "zh" and at.query_params["prompt"] == prompt
    texts = _texts(at)
    assert t("zh", "generation.chinese_note") in texts, "the page says SmolLM2 answers Chinese poorly"
    assert any("Q4_1" in c and "float32" in c for c in texts), "SmolLM2's 4-bit release, in Chinese"
    assert at.button(key="gen_go").label == "生成"
    at.button(key="gen_step").click().run()
    _ok(at)
    assert t("zh", "generation.paused", n=1) in [c.value for c in at.caption]
    step = at.session_state["generation_lab"].run.steps[0]
    titles = _titles(at)
    assert titles[0].startswith("第 1 个词元：以概率"), titles
    assert any(title.startswith("“") and "对上下文的注意力" in title for title in titles), titles
    assert [m.label for m in at.metric][:2] == ["已生成词元数", "每秒词元数"]
    assert step.prob > 0


def test_the_whole_page_runs_in_chinese_with_the_libraries_sentences_in_chinese():
    at = _through_router(lang="zh", model="tiny-llama", chat="0", max_new_tokens="6", use_cache="0")
    assert at.radio(key=KEY("chat")).options == ["对话", "纯续写"]
    at.button(key="gen_go").click().run()
    _ok(at)
    run = at.session_state["generation_lab"].run
    captions = [c.value for c in at.caption]
    assert t("zh", "generation.finished", n=6, reason=t("zh", "generation.finish.max_new_tokens")) in captions
    assert t("zh", "generation.decoding_caption", how=render(run.settings.describe(), "zh"),
             cache=t("zh", "generation.cache_off")) in captions
    assert "温度 0.7 · Top-k 50" in render(run.settings.describe(), "zh")
    at.button(key="gen_measure").click().run()
    _ok(at)
    titles = _titles(at)
    for key in ("generation.fig.timeline_title", "generation.fig.entropy_title", "generation.fig.speed_title"):
        assert t("zh", key) in titles, (key, titles)
    # a library sentence, in Chinese: a run without the cache over the budget
    at.slider(key=KEY("max_new_tokens")).set_value(256).run()
    at.text_area(key=KEY("prompt")).input("x" * 100).run()
    assert [e.value for e in at.error][0].startswith("关闭 KV cache 时"), [e.value for e in at.error]
