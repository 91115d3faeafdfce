"""The training lab from links: every TrainingSettings field under its own name in the address
(``?norm_position=post&lr=0.03&warmup=0``), a bad value named and replaced by the default, a value the rest of the
link makes impossible (n_kv_head=3 with n_head=4) named too, and the page in 中文 from ``?lang=zh``."""
from __future__ import annotations

from functools import partial

from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.training import TrainingSettings, count_params
from explorer.labs.training_data import source_text, token_data
from explorer.ui.training import STATE_KEY
from tests.apptest_helpers import ok as _ok, open_page, texts, through_router
from tests.conftest import shown_text

KEY = "training.{}".format
POST_LN = dict(corpus="shakespeare", tokenizer="bpe", merges="300", n_layer="3", d_model="96", n_head="8",
               n_kv_head="2", norm="rmsnorm", norm_position="post", activation="swiglu", positional="rope",
               context="48", lr="0.03", warmup="0", steps="200", beta1="0.8", beta2="0.95", eps="1e-06",
               weight_decay="0", clip="0", batch_size="8", seed="7", attn_layer="2", attn_head="5")


_page = partial(open_page, "labs/training.py")
_through_router = partial(through_router, "labs/training.py")


def _texts(at: AppTest) -> str:
    return "\n".join(texts(at, ("markdown", "caption", "header")))


def _warnings(at: AppTest) -> str:
    return " ".join(shown_text(w.value) for w in at.warning)


def _params(settings: TrainingSettings) -> tuple[int, int]:
    data = token_data(source_text(settings.corpus, settings.text), settings.tokenizer, settings.merges,
                      settings.val_fraction)
    vocab = data.tokenizer.vocab_size
    return count_params(settings.model_config(vocab)), vocab


def test_a_post_ln_link_opens_that_view_and_stays_in_the_address():
    at = _ok(_page(**POST_LN))
    side = at.sidebar
    assert side.radio(key=KEY("corpus")).value == "shakespeare"
    assert side.radio(key=KEY("tokenizer")).value == "bpe" and side.slider(key=KEY("merges")).value == 300
    assert side.slider(key=KEY("n_layer")).value == 3 and side.select_slider(key=KEY("d_model")).value == 96
    assert side.select_slider(key=KEY("n_head")).value == 8 and side.select_slider(key=KEY("n_kv_head")).value == 2
    assert side.radio(key=KEY("norm")).value == "rmsnorm" and side.radio(key=KEY("norm_position")).value == "post"
    assert side.selectbox(key=KEY("activation")).value == "swiglu"
    assert side.selectbox(key=KEY("positional")).value == "rope"
    assert side.select_slider(key=KEY("lr")).value == 0.03 and side.slider(key=KEY("warmup")).value == 0
    assert side.select_slider(key=KEY("beta2")).value == 0.95 and side.select_slider(key=KEY("eps")).value == 1e-6
    assert side.slider(key=KEY("attn_layer")).value == 2 and side.slider(key=KEY("attn_head")).value == 5
    assert not at.warning
    assert dict(at.query_params) == POST_LN
    used = at.session_state[STATE_KEY].preview.settings
    expected = TrainingSettings(corpus="shakespeare", tokenizer="bpe", merges=300, n_layer=3, d_model=96, n_head=8,
                                n_kv_head=2, norm="rmsnorm", norm_position="post", activation="swiglu",
                                positional="rope", context=48, lr=0.03, warmup=0, steps=200, beta1=0.8, beta2=0.95,
                                eps=1e-6, weight_decay=0.0, clip=0.0, batch_size=8, seed=7, attn_layer=2, attn_head=5)
    assert used == expected
    params, vocab = _params(expected)
    assert t("en", "training.ready", steps=200, params=params, vocab=vocab) in _texts(at)


def test_a_moved_control_writes_the_address_and_the_default_leaves_it():
    at = _ok(_page())
    assert dict(at.query_params) == {}
    at.sidebar.select_slider(key=KEY("lr")).set_value(0.01).run()
    at.sidebar.radio(key=KEY("norm_position")).set_value("post").run()
    assert dict(at.query_params) == {"lr": "0.01", "norm_position": "post"}
    at.sidebar.radio(key=KEY("norm_position")).set_value("pre").run()
    assert dict(at.query_params) == {"lr": "0.01"}


def test_bad_values_in_a_link_are_named_and_replaced_by_the_defaults():
    at = _ok(_page(n_head="99", lr="fast", norm="batchnorm", steps="120"))
    defaults = TrainingSettings()
    warnings = _warnings(at)
    for name, value in (("n_head", "99"), ("lr", "fast"), ("norm", "batchnorm")):
        assert f"“{name}”" in warnings and repr(value) in warnings
    assert at.sidebar.select_slider(key=KEY("n_head")).value == defaults.n_head
    assert at.sidebar.select_slider(key=KEY("lr")).value == defaults.lr
    assert at.sidebar.radio(key=KEY("norm")).value == defaults.norm
    assert at.sidebar.number_input(key=KEY("steps")).value == 120, "the good values of the link are kept"
    assert dict(at.query_params) == {"steps": "120"}


def test_a_value_the_rest_of_the_link_rules_out_is_named():
    at = _ok(_page(n_head="4", n_kv_head="3", steps="10", warmup="50"))
    warnings = _warnings(at)
    assert "“n_kv_head”" in warnings and "'3'" in warnings
    assert "“warmup”" in warnings and "'50'" in warnings
    assert at.sidebar.select_slider(key=KEY("n_kv_head")).value == 4
    assert at.sidebar.slider(key=KEY("warmup")).value == 10


def test_a_pasted_text_travels_in_the_link():
    text = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n" * 40
    at = _ok(_page(corpus="custom", text=text, context="16"))
    assert at.sidebar.text_area(key=KEY("text")).value == text
    used = at.session_state[STATE_KEY].preview.settings
    assert used.corpus == "custom" and used.text == text
    _, vocab = _params(used)
    assert vocab == len(set(text)) + 1  # every character of the text, and the <unk> id


def test_a_chinese_link_opens_in_chinese():
    at = _ok(_through_router(lang="zh", norm_position="post", lr="0.03", warmup="0"))
    assert at.title[0].value == t("zh", "training.title")
    assert at.sidebar.radio(key=KEY("norm_position")).value == "post"
    assert at.sidebar.select_slider(key=KEY("lr")).label == t("zh", "training.lr")
    assert at.query_params["lang"] == "zh" and at.query_params["lr"] == "0.03"
    params, vocab = _params(TrainingSettings(norm_position="post", lr=0.03, warmup=0))
    assert t("zh", "training.ready", steps=TrainingSettings().steps, params=params, vocab=vocab) in _texts(at)
