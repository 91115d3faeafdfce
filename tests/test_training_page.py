"""The training lab's page (AppTest): it opens in English and in Chinese, its controls change what it will train
(numbers from the library, never typed here), a short training runs to its end in the background and leaves "my
trained model", Pause really pauses, Stop stops, and two finished runs are drawn on one chart."""
from __future__ import annotations

import json
import math
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.jobs import DONE, PAUSED, RUNNING, STOPPED
from explorer.labs.training import TrainingSettings, count_params
from explorer.labs.training_data import source_text, token_data
from explorer.ui.training import STATE_KEY, TRAINED, TRAINED_KEY
from tests.conftest import ROOT

KEY = "training.{}".format
# Small enough that a run of 8 steps takes a second or two on one shared core, large enough to have two layers and
# two heads to look at. 唐诗 per character: about 2,600 tokens in the vocabulary.
TINY = dict(d_model="16", n_head="2", n_kv_head="2", context="16", batch_size="4", steps="8", warmup="2",
            eval_every="4", sample_every="4")
WAIT_S = 120.0  # a run of 8 tiny steps takes seconds; only a hung job gets near this


def _page(**query) -> AppTest:
    """Through the router: once a run has ended the page links to the other labs, which only the router knows."""
    return _through_router(**query)


def _through_router(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    at.run()
    return at.switch_page("labs/training.py").run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _figure(at: AppTest, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "warning", "info", "error", "success", "header")
                     for e in at.get(kind))


def _state(at: AppTest):
    return at.session_state[STATE_KEY]


def _finish(at: AppTest) -> AppTest:
    job = _state(at).current.job
    assert job.join(WAIT_S), f"the training did not end in {WAIT_S} s"
    return _ok(at.run())


@pytest.fixture(autouse=True)
def _no_job_left_running():
    """A job left running would hold the process's only training slot (2 cores: capacity 1) for the next test."""
    pages: list[AppTest] = []
    yield pages
    for at in pages:
        current = _state(at).current if STATE_KEY in at.session_state else None
        if current is not None:
            current.job.stop()
            current.job.join(10)


def test_the_page_opens_with_the_loss_chart_first_and_the_library_numbers():
    at = _ok(_page())
    s = TrainingSettings()
    data = token_data(source_text(s.corpus, s.text), s.tokenizer, s.merges, s.val_fraction)
    vocab = data.tokenizer.vocab_size
    assert at.title[0].value == t("en", "training.title")
    loss = _figure(at, "training_loss")
    assert loss["layout"]["title"]["text"] == t("en", "training.fig.loss_title")
    assert t("en", "training.fig.uniform", v=vocab, ln_v=math.log(vocab)) in [d["name"] for d in loss["data"]]
    params = count_params(s.model_config(vocab))
    assert t("en", "training.ready", steps=s.steps, params=params, vocab=vocab) in _texts(at)
    # the schedule is drawn before training: warm-up from 0, peak lr, cosine to the floor
    lrs = _figure(at, "training_schedule")["data"][0]["y"]
    assert lrs[0] == 0 and max(lrs) == pytest.approx(s.lr) and lrs[-1] == pytest.approx(s.lr * s.min_lr_ratio)
    # the objective: one batch's per-position cross-entropy, its mean on the caption, against ln V
    batch = _figure(at, "training_batch")
    assert batch["layout"]["title"]["text"] == t("en", "training.fig.batch_title")
    assert all(y > 0 for y in batch["data"][0]["y"])
    assert at.button(key="training.go").label == t("en", "training.train")


def test_the_page_runs_in_chinese():
    at = _ok(_through_router(lang="zh"))
    assert at.title[0].value == t("zh", "training.title")
    assert at.sidebar.radio(key=KEY("corpus")).label == t("zh", "training.corpus")
    assert at.sidebar.radio(key=KEY("norm_position")).label == t("zh", "training.norm_position")
    assert _figure(at, "training_loss")["layout"]["title"]["text"] == t("zh", "training.fig.loss_title")
    assert _figure(at, "training_schedule")["layout"]["title"]["text"] == t("zh", "training.fig.lr_title")
    assert any(h.value == t("zh", "training.objective.header") for h in at.subheader)
    assert at.button(key="training.go").label == t("zh", "training.train")


def test_moving_the_controls_changes_the_model_and_the_vocabulary():
    at = _ok(_page())
    at.sidebar.select_slider(key=KEY("d_model")).set_value(32).run()
    at.sidebar.select_slider(key=KEY("n_head")).set_value(8).run()
    at.sidebar.select_slider(key=KEY("n_kv_head")).set_value(2).run()
    at.sidebar.slider(key=KEY("n_layer")).set_value(3).run()
    at.sidebar.radio(key=KEY("tokenizer")).set_value("bpe").run()
    at.sidebar.slider(key=KEY("merges")).set_value(200).run()
    at.sidebar.radio(key=KEY("norm")).set_value("rmsnorm").run()
    at.sidebar.radio(key=KEY("norm_position")).set_value("post").run()
    _ok(at)
    s = TrainingSettings(d_model=32, n_head=8, n_kv_head=2, n_layer=3, tokenizer="bpe", merges=200, norm="rmsnorm",
                         norm_position="post")
    data = token_data(source_text(s.corpus, s.text), s.tokenizer, s.merges, s.val_fraction)
    vocab = data.tokenizer.vocab_size
    assert t("en", "training.ready", steps=s.steps, params=count_params(s.model_config(vocab)), vocab=vocab) \
        in _texts(at)
    assert _state(at).preview.settings == s
    assert {k: v for k, v in at.query_params.items() if k != "lang"} == dict(
        d_model="32", n_head="8", n_kv_head="2", n_layer="3", tokenizer="bpe", merges="200", norm="rmsnorm",
        norm_position="post")


def test_a_short_training_runs_to_the_end_and_leaves_my_trained_model(_no_job_left_running):
    at = _ok(_page(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _ok(at)
    run = _state(at).current
    assert run is not None and run.settings.steps == 8
    _finish(at)
    assert run.job.state == DONE and run.job.progress == (9, 9)  # records 0..8: the last measures the trained model
    steps = run.job.history()
    loss = _figure(at, "training_loss")
    assert loss["data"][0]["y"] == pytest.approx([s.loss for s in steps])
    assert loss["data"][1]["x"] == [0, 4, 8]  # validation at eval_every steps and at the end
    assert t("en", "training.status.done", step=8, total=8) in [p.proto.text for p in at.get("progress")]
    samples = [c.value for c in at.code]
    assert [s.sample for s in run.job.checkpoints()][::-1] == samples[:3], "the newest sample first"
    mine = at.session_state[TRAINED_KEY]
    assert mine.name == TRAINED and mine.steps == 8
    assert at.metric[0].value == t("en", "training.metric.loss_value", loss=steps[-1].loss)
    assert t("en", "training.mine.have", title=str(mine.title)).split("(")[0] in _texts(at)
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    to_generation = links[t("en", "training.mine.to_generation")]
    assert to_generation.page.endswith("generation") and "model=trained" in to_generation.query_string
    assert "model=trained" in links[t("en", "training.mine.to_internals")].query_string


def test_pause_really_pauses_resume_goes_on_and_stop_stops(_no_job_left_running):
    at = _ok(_page(**{**TINY, "steps": "5000", "eval_every": "1000", "sample_every": "1000"}))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    job = _state(at).current.job
    assert job.wait_for(lambda j: j.progress[0] >= 3, WAIT_S)
    at.run()
    at.button(key="training.pause").click().run()
    assert job.wait_for(lambda j: j.state == PAUSED, WAIT_S)
    done = job.progress[0]
    time.sleep(1.0)  # tens of tiny steps' time
    assert job.progress[0] == done, "steps advanced while paused"
    at.run()
    assert t("en", "training.status.paused", step=job.latest.step, total=5000) in \
        [p.proto.text for p in at.get("progress")]
    at.button(key="training.resume").click().run()
    assert job.wait_for(lambda j: j.state == RUNNING and j.progress[0] > done, WAIT_S)
    at.run()
    at.button(key="training.stop").click().run()
    assert job.join(WAIT_S) and job.state == STOPPED
    _ok(at.run())
    stopped_at = job.latest.step
    assert t("en", "training.status.stopped", step=stopped_at, total=5000) in \
        [p.proto.text for p in at.get("progress")]
    assert at.session_state[TRAINED_KEY].steps == stopped_at, "a stopped run's model is kept as it was"
    assert len(_state(at).finished) == 1


def test_two_finished_runs_are_drawn_on_one_chart(_no_job_left_running):
    at = _ok(_page(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _finish(at)
    at.sidebar.radio(key=KEY("norm_position")).set_value("post").run()
    at.button(key="training.go").click().run()
    _finish(at)
    first, second = _state(at).finished
    assert (first.settings.norm_position, second.settings.norm_position) == ("pre", "post")
    compare = _figure(at, "training_compare")
    names = [d["name"] for d in compare["data"]]
    assert t("en", "training.fig.run_train", run=first.label("en")) in names
    assert t("en", "training.fig.run_train", run=second.label("en")) in names
    assert compare["data"][names.index(t("en", "training.fig.run_train", run=second.label("en")))]["y"] == \
        pytest.approx([s.loss for s in second.steps])


def test_a_new_train_press_stops_the_run_before_it(_no_job_left_running):
    at = _ok(_page(**{**TINY, "steps": "5000"}))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    old = _state(at).current.job
    assert old.wait_for(lambda j: j.progress[0] >= 1, WAIT_S)
    at.sidebar.number_input(key=KEY("steps")).set_value(8).run()
    assert t("en", "training.other_settings", n=1) in _texts(at)
    at.button(key="training.go").click().run()
    assert old.state == STOPPED and not old.alive
    _finish(at)
    assert _state(at).current.number == 2 and [r.number for r in _state(at).finished] == [1, 2]


def test_my_trained_model_writes_in_the_generation_lab_of_the_same_session(_no_job_left_running):
    at = _ok(_through_router(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _finish(at)
    mine = at.session_state[TRAINED_KEY]
    at.switch_page("labs/generation.py").run()
    _ok(at)
    model = at.selectbox(key="generation.model")
    assert TRAINED in model.options or t("en", "training.mine.model_label") in model.options
    model.set_value(TRAINED).run()
    at.text_area(key="generation.prompt").set_value("床前明月光").run()
    at.button(key="gen_go").click().run()
    _ok(at)
    run = at.session_state["generation_lab"].run
    assert run is not None and run.model is mine.model, "the session's own model wrote the text"
    assert len(run.steps) > 0 and set(run.token_ids) <= set(range(mine.config.vocab_size))
    assert run.text == mine.tokenizer.decode(run.token_ids)


def test_a_link_to_the_trained_model_without_one_falls_back_with_a_sentence():
    at = AppTest.from_file(str(ROOT / "labs/generation.py"), default_timeout=120)
    at.query_params["model"] = TRAINED
    _ok(at.run())
    assert at.selectbox(key="generation.model").value != TRAINED
    assert any("“model”" in str(w.value) and TRAINED in str(w.value) for w in at.warning)


def test_my_trained_model_is_looked_inside_in_the_internals_lab(_no_job_left_running):
    at = _ok(_through_router(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _finish(at)
    mine = at.session_state[TRAINED_KEY]
    at.switch_page("labs/internals.py").run()
    _ok(at)
    assert at.selectbox(key="internals.model").value != TRAINED  # offered, not picked by itself
    at.selectbox(key="internals.model").set_value(TRAINED).run()
    _ok(at)
    text = at.text_area(key="internals.text").value
    assert text and text in _state(at).current.trainer.split[1], "it reads the start of its own validation text"
    n_params = sum(p.numel() for p in mine.model.parameters())
    assert t("en", "training.mine.internals_caption", title=str(mine.title), params=n_params) in _texts(at)
    summary = _figure(at, "internals.summary_trained")
    assert summary["data"][0]["z"]["shape"] == f"{mine.config.n_layer}, {mine.config.n_head}"  # layers x heads


def test_a_waiting_training_shows_its_place_in_line_and_starts_when_a_slot_frees(monkeypatch,
                                                                                _no_job_left_running):
    from explorer import jobs
    from explorer.admission import AdmissionQueue

    line = AdmissionQueue(1)
    monkeypatch.setattr(jobs, "_queue", line)
    other_session = line.join()  # another student's training holds the only slot
    at = _ok(_page(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _ok(at)
    job = _state(at).current.job
    assert job.state == jobs.WAITING and job.place() == 1
    assert t("en", "training.status.queue", place=1, running=1) in [i.value for i in at.info]
    assert job.progress[0] == 0
    other_session.leave()
    _finish(at)
    assert job.state == DONE and not at.info


def test_the_live_panels_show_attention_learning_rate_and_gradient_norms(_no_job_left_running):
    at = _ok(_page(**TINY))
    _no_job_left_running.append(at)
    at.button(key="training.go").click().run()
    _finish(at)
    run = _state(at).current
    panel = at.button_group(key="training.panel")
    panel.set_value("attention").run()
    _ok(at)
    last = run.job.checkpoints()[-1]
    attention = _figure(at, "training_attention")
    assert attention["layout"]["title"]["text"] == t("en", "training.fig.attention_title", step=last.step, layer=1,
                                                     head=1)
    at.button_group(key="training.panel").set_value("grad").run()
    names = [d["name"] for d in _figure(at, "training_grad")["data"]]
    assert names == [t("en", "training.fig.group_embed"), t("en", "training.fig.layer", n=1),
                     t("en", "training.fig.layer", n=2), t("en", "training.fig.group_final"),
                     t("en", "training.fig.clip", clip=run.settings.clip)]
    at.button_group(key="training.panel").set_value("lr").run()
    lr = _figure(at, "training_lr_live")
    assert lr["data"][0]["y"] == pytest.approx(run.trainer.schedule())
    assert lr["data"][1]["x"] == [run.job.latest.step]  # the marker: where the run is on its schedule
