"""The inference lab's metrics tab as a student opens it (``?tab=metrics``): the default view on SmolLM2, two links
that set its controls, a bad value, an empty and a too long text, and the tab in 中文. Numbers on the page are
checked against the library run on the same shared model (st.cache_resource is one per process, so the test reads
the model the page used)."""
from __future__ import annotations


from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.inference_metrics import EXAMPLES, MAX_TEXT_CHARS, MAX_TOKENS, REAL_MODEL, read_text
from explorer.metrics import sentence_bleu
from explorer.safe_text import escape_markdown
from tests.apptest_helpers import chart_titles as _titles, ok as _ok, open_page, through_router
from tests.conftest import ROOT

KEY = "inference_metrics.{}".format
TIMEOUT = 600  # SmolLM2 loads and reads eight texts on the first run, on two shared cores


def _page(**query) -> AppTest:
    return open_page("labs/inference.py", TIMEOUT, **{"tab": "metrics", **query})


def _through_router(**query) -> AppTest:
    return through_router("labs/inference.py", TIMEOUT, **{"tab": "metrics", **query})


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "warning", "error", "subheader")
                     for e in at.get(kind))


def _read(text: str, window: int = 256, stride: int = 128):
    from explorer.ui.models import shared_model

    return read_text(shared_model(REAL_MODEL), text, window, stride).scored


def _strip_title(lang: str, scored) -> str:
    return t(lang, "inference_metrics.fig.strip_title", ppl=scored.perplexity, loss=scored.mean_loss,
             n=scored.n_scored)


def test_the_default_view_reads_the_first_example_on_smollm2():
    at = _ok(_page())
    assert at.sidebar.selectbox(key=KEY("model")).value == REAL_MODEL
    assert at.selectbox(key=KEY("example")).value == "attention_en"
    assert not at.warning and not at.error
    scored = _read(EXAMPLES["attention_en"])
    titles = _titles(at)
    assert titles[0] == _strip_title("en", scored)
    assert t("en", "inference_metrics.fig.compare_title") in titles
    assert "Q4_1" in _texts(at)  # where SmolLM2's numbers come from, read from its file
    assert dict(at.query_params) == {"tab": "metrics"}


def test_a_moved_control_writes_the_address():
    at = _ok(_page())
    at.selectbox(key=KEY("example")).set_value("residual_en").run()
    _ok(at)
    assert dict(at.query_params) == {"tab": "metrics", "example": "residual_en"}
    assert _titles(at)[0] == _strip_title("en", _read(EXAMPLES["residual_en"]))


def test_a_link_with_a_window_opens_that_view():
    query = dict(example="residual_zh", window="64", stride="16", seed="3")
    at = _ok(_page(**query))
    assert at.selectbox(key=KEY("example")).value == "residual_zh"
    assert at.sidebar.select_slider(key=KEY("window")).value == 64
    assert at.sidebar.slider(key=KEY("stride")).value == 16
    assert at.sidebar.number_input(key=KEY("seed")).value == 3
    assert not at.warning
    assert dict(at.query_params) == {"tab": "metrics", **query}
    scored = _read(EXAMPLES["residual_zh"], 64, 16)
    assert scored.n_windows > 1
    assert _titles(at)[0] == _strip_title("en", scored)
    assert t("en", "inference_metrics.ppl.windows", windows=scored.n_windows, window=64, stride=16,
             context=48) in _texts(at)


def test_a_link_with_an_own_pair_shows_its_counts():
    reference, hypothesis = "the cat sat on the mat", "the cat is on the mat"
    query = dict(pair="own", reference=reference, hypothesis=hypothesis, smooth="floor")
    at = _ok(_page(**query))
    assert at.text_area(key=KEY("reference")).value == reference
    assert at.text_area(key=KEY("hypothesis")).value == hypothesis
    assert at.sidebar.selectbox(key=KEY("smooth")).value == "floor"
    assert dict(at.query_params) == {"tab": "metrics", **query}
    bleu = sentence_bleu(hypothesis, [reference], "floor")
    line = t("en", "inference_metrics.overlap.bleu_line", c=6, r=6, bp=1.0, order=4, bleu=bleu.score,
             smooth=t("en", "inference_metrics.smooth.floor"))
    assert line in _texts(at)
    assert t("en", "inference_metrics.fig.precision_title", bleu=bleu.score, bp=1.0) in _titles(at)


def test_a_bad_value_in_a_link_is_named_and_the_default_shown():
    at = _ok(_page(window="99", smooth="laplace"))
    warnings = " ".join(str(w.value) for w in at.warning)
    assert "99" in warnings and "window" in warnings and "laplace" in warnings
    assert at.sidebar.select_slider(key=KEY("window")).value == 256
    assert at.sidebar.selectbox(key=KEY("smooth")).value == "exp"


def test_an_empty_own_text_is_a_sentence_and_the_first_example_is_read():
    at = _ok(_page(example="own"))
    assert escape_markdown(t("en", "inference_metrics.error.empty_text")) in " ".join(str(e.value) for e in at.error)
    assert _titles(at)[0] == _strip_title("en", _read(EXAMPLES["attention_en"]))


def test_a_huge_text_in_a_link_is_refused_and_a_long_one_is_cut_at_the_token_cap():
    at = _ok(_page(example="own", text="x" * (MAX_TEXT_CHARS + 1)))
    assert "text" in " ".join(str(w.value) for w in at.warning)
    # within the box but past the tokens the tab reads: Chinese takes more than one SmolLM2 token per character
    long_text = (EXAMPLES["residual_zh"] * 20)[:MAX_TEXT_CHARS]
    at = _ok(_page(example="own", text=long_text))
    scored = _read(long_text)
    assert scored.truncated and len(scored.ids) == MAX_TOKENS
    assert t("en", "inference_metrics.ppl.truncated", kept=MAX_TOKENS, total=scored.n_original,
             cap=MAX_TOKENS) in _texts(at)


def test_the_tab_in_chinese():
    at = _ok(_through_router(lang="zh"))
    assert at.sidebar.subheader[-1].value == t("zh", "inference_metrics.sidebar.title") or \
        t("zh", "inference_metrics.sidebar.title") in [s.value for s in at.sidebar.subheader]
    titles = _titles(at)
    assert titles[0] == _strip_title("zh", _read(EXAMPLES["attention_en"]))
    assert t("zh", "inference_metrics.fig.compare_title") in titles
    texts = _texts(at)
    assert t("zh", "inference_metrics.ppl.header") in texts and t("zh", "inference_metrics.overlap.header") in texts
    assert at.selectbox(key=KEY("example")).format_func("attention_zh") == t("zh",
                                                                             "inference_metrics.example.attention_zh")


def _my_trained_model():
    """A session's "trained model": a character tokenizer over the Chinese examples and a 64-token context (so
    SmolLM2's default window of 256 does not fit it), weights from a seed."""
    from explorer.bpe import CharTokenizer
    from explorer.config import ModelConfig
    from explorer.labs.training import TrainedTokenizer, trained_model
    from explorer.model import Transformer

    tok = TrainedTokenizer(CharTokenizer.from_text(EXAMPLES["attention_zh"] + EXAMPLES["residual_zh"]))
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=tok.vocab_size, max_seq_len=64)
    return trained_model(Transformer.from_seed(cfg, 0), tok, name="trained")


def test_a_link_to_my_trained_model_reads_with_it_within_its_context():
    mine = _my_trained_model()
    at = AppTest.from_file(str(ROOT / "labs/inference.py"), default_timeout=TIMEOUT)
    at.session_state["training.my_model"] = mine
    at.query_params.update(tab="metrics", model="trained", example="residual_zh")
    _ok(at.run())
    assert at.sidebar.selectbox(key=KEY("model")).value == "trained"
    window = at.sidebar.select_slider(key=KEY("window"))
    assert window.value == 64 and max(window.options, key=int) == "64"  # no window past the model's context
    scored = read_text(mine, EXAMPLES["residual_zh"], 64, 32).scored
    assert _titles(at)[0] == _strip_title("en", scored)
    texts = _texts(at)
    smollm2_note = t("en", "inference_metrics.ppl.smollm2_note", file="", quant="").split("(")[0]
    assert t("en", "inference_metrics.ppl.trained_note") in texts and smollm2_note not in texts


def test_a_link_to_a_trained_model_in_a_session_without_one_shows_smollm2():
    at = _ok(_page(model="trained"))
    assert t("en", "inference_metrics.no_trained") in " ".join(str(w.value) for w in at.warning).replace("\\", "")
    assert at.sidebar.selectbox(key=KEY("model")).value == REAL_MODEL
