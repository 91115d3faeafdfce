"""The SFT tab on the page: in English and 中文, opened from links (``?tab=sft&example=12&turns=2``), a bad value
named and replaced by its default, and the Fine-tune button running a job the Stop button ends."""

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.jobs import DONE, STOPPED
from explorer.labs.posttraining_sft import SftSettings, run_sft
from explorer.sft import SftTrainer, TrainConfig
from explorer.ui import posttraining_sft as sft_ui
from tests.apptest_helpers import captions as _captions, figure as _figure, ok as _ok, open_page
from tests.conftest import ROOT, shown_text
from tests.pretrained_models import ours
from tests.test_posttraining_sft import _examples, tiny_base

KEY = "posttraining_sft.{}".format


def _page(**query) -> AppTest:
    return open_page("labs/posttraining.py", 300, **query)


def _expected(example: int, turns: int):
    return run_sft(SftSettings(example=example, turns=turns), ours("smollm2-135m")).result.view


def test_the_tab_opens_in_english_with_the_conversations_numbers():
    at = _ok(_page())
    view = _expected(0, 1)
    assert _figure(at, "sft_token_loss")["layout"]["title"]["text"] == t(
        "en", "posttraining_sft.fig.title", n=view.n_counted, total=view.n_predicted)
    assert t("en", "posttraining_sft.loss_caption", masked=view.masked, n=view.n_counted, unmasked=view.unmasked,
             total=view.n_predicted) in _captions(at)
    assert dict(at.query_params) == {}


def test_a_link_opens_that_conversation_and_those_settings_and_stays_in_the_address():
    query = dict(tab="sft", example="12", turns="2", steps="4", batch="1", lr="0.0003")
    at = _ok(_page(**query))
    assert at.selectbox(key=KEY("example")).value == 12
    assert at.segmented_control(key=KEY("turns")).value == 2
    assert at.slider(key=KEY("steps")).value == 4 and at.select_slider(key=KEY("batch")).value == 1
    assert at.select_slider(key=KEY("lr")).value == 3e-4
    assert dict(at.query_params) == {k: v for k, v in query.items() if k != "tab"}  # sft is the default tab
    view = _expected(12, 2)
    assert _figure(at, "sft_token_loss")["layout"]["title"]["text"] == t(
        "en", "posttraining_sft.fig.title", n=view.n_counted, total=view.n_predicted)
    assert not at.warning


def test_a_link_in_chinese():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update(lang="zh", tab="sft", example="30", turns="2")
    at.run()
    at = _ok(at.switch_page("labs/posttraining.py").run())
    assert at.title[0].value == t("zh", "posttraining.title")
    assert at.selectbox(key=KEY("example")).value == 30
    assert at.subheader[0].value == t("zh", "posttraining_sft.train_header")
    view = _expected(30, 2)
    assert _figure(at, "sft_token_loss")["layout"]["title"]["text"] == t(
        "zh", "posttraining_sft.fig.title", n=view.n_counted, total=view.n_predicted)
    assert t("zh", "posttraining_sft.loss_caption", masked=view.masked, n=view.n_counted, unmasked=view.unmasked,
             total=view.n_predicted) in _captions(at)


@pytest.mark.parametrize("name, value, default", [("example", "999", 0), ("lr", "0.5", 1e-4), ("turns", "x", 1)])
def test_a_bad_value_is_named_and_the_default_shown(name, value, default):
    at = _ok(_page(tab="sft", **{name: value}))
    assert any(value in shown_text(w.value) for w in at.warning)
    widget = {"example": at.selectbox, "lr": at.select_slider, "turns": at.segmented_control}[name]
    assert widget(key=KEY(name)).value == default
    assert name not in at.query_params


def _tiny_trainer(steps: int):
    def make(settings, model):
        return SftTrainer(tiny_base(), _examples(), [[1, 2, 3]] * 8,
                          TrainConfig(steps=steps, batch=2, max_new_tokens=3),
                          decode=lambda ids: "·".join(map(str, ids)))
    return make


def _run(at: AppTest):
    return at.session_state[sft_ui.STATE_KEY].current


def test_fine_tune_runs_in_the_background_and_shows_the_answers_after(monkeypatch):
    monkeypatch.setattr(sft_ui, "trainer_for", _tiny_trainer(4))
    at = _ok(_page(tab="sft", steps="4"))
    at.button(key=KEY("go")).click().run()
    run = _run(at)
    assert run.job.join(60) and run.job.state == DONE
    at.run()
    _ok(at)
    table = at.dataframe[0].value
    after = table[t("en", "posttraining_sft.col.after")]
    assert len(after) == 8 and all(after) and all(table[t("en", "posttraining_sft.col.before")])
    steps = _figure(at, "sft_loss")["data"][0]["x"]
    assert list(steps) == [1, 2, 3, 4]


def test_stop_ends_the_run(monkeypatch):
    monkeypatch.setattr(sft_ui, "trainer_for", _tiny_trainer(16))
    at = _ok(_page(tab="sft", steps="16"))
    at.button(key=KEY("go")).click().run()
    run = _run(at)
    run.job.pause()  # hold it still while the page draws its buttons
    assert run.job.wait_for(lambda j: j.state == "paused", 30)
    at.run()
    at.button(key=KEY("stop")).click().run()
    assert run.job.join(30) and run.job.state == STOPPED
    assert run.job.progress[0] < run.trainer.total
