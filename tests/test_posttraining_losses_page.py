"""The post-training lab's ``losses`` tab: the terms of a pair in English and in 中文, two links that set its controls
(and stay in the address), a bad value that is named and replaced by the default; and the DPO run on the real model
(margin and KL grow; Stop ends it)."""
from __future__ import annotations

import math

from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.jobs import DONE, STOPPED, Job
from explorer.labs.posttraining_losses import DPORun, LossesSettings, run
from tests.apptest_helpers import ok, through_router
from tests.conftest import ROOT
from tests.pretrained_models import ours


def _page(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "labs/posttraining.py"), default_timeout=300)
    at.query_params.update(tab="losses", **query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_the_terms_of_the_default_pair_in_english():
    at = _page()
    assert at.selectbox(key="posttraining_losses.pair").value == "en-capital"
    assert at.subheader[0].value == t("en", "posttraining_losses.run_header")
    # before any update π = π_ref: margin 0, loss log 2, as the caption computes it
    assert t("en", "posttraining_losses.dpo_caption", beta=0.1, margin=0.0, loss=math.log(2)) in _captions(at)
    table = at.dataframe[0].value
    assert list(table.columns)[1] == t("en", "posttraining_losses.col.chosen", answer="The capital of France is Paris.")
    assert not at.warning


def _chinese() -> AppTest:
    """Through the app's shell, which reads ``?lang=``: the language is the app's control, not the page's."""
    return ok(through_router("labs/posttraining.py", 300, lang="zh", tab="losses"))


def test_the_tab_in_chinese():
    at = _chinese()
    assert at.subheader[0].value == t("zh", "posttraining_losses.run_header")
    assert at.button(key="posttraining_losses.go").label == t("zh", "posttraining_losses.train")
    assert t("zh", "posttraining_losses.untrained_note") in _captions(at)


def test_a_link_sets_the_pair_and_beta():
    at = _page(pair="zh-week", beta="0.5")
    assert at.selectbox(key="posttraining_losses.pair").value == "zh-week"
    assert at.select_slider(key="posttraining_losses.beta").value == 0.5
    assert dict(at.query_params) == {"tab": "losses", "pair": "zh-week", "beta": "0.5"}
    assert t("en", "posttraining_losses.dpo_caption", beta=0.5, margin=0.0, loss=math.log(2)) in _captions(at)


def test_a_link_sets_the_run_controls():
    at = _page(steps="5", lr="0.001", trainable_layers="1")
    assert at.number_input(key="posttraining_losses.steps").value == 5
    assert at.select_slider(key="posttraining_losses.lr").value == 0.001
    assert at.select_slider(key="posttraining_losses.trainable_layers").value == 1
    assert dict(at.query_params) == {"tab": "losses", "steps": "5", "lr": "0.001", "trainable_layers": "1"}


def test_a_bad_value_is_named_and_the_default_shown():
    at = _page(beta="7")
    assert any("beta" in str(w.value) and "7" in str(w.value) for w in at.warning)
    assert at.select_slider(key="posttraining_losses.beta").value == 0.1
    assert "beta" not in at.query_params


def test_a_settings_value_that_cannot_be_used_falls_back_with_a_sentence():
    shown = run(LossesSettings(beta=0.3), ours("smollm2-135m"))
    assert shown.error and shown.result is not None and shown.settings.beta == 0.1


def test_dpo_moves_the_margin_up_and_the_policy_away_from_the_reference():
    """Two updates of one trained block on SmolLM2: the mean margin and the KL grow from exactly 0, the loss falls
    from log 2; the shared model is not written."""
    pm = ours("smollm2-135m")
    before = pm.model.stack.blocks[-1].mlp.W_out.weight.clone()
    trainer = DPORun(pm, LossesSettings(steps=2, lr=1e-4, trainable_layers=1))
    steps = list(trainer.steps())
    assert [s.step for s in steps] == [0, 1, 2]
    assert steps[0].margin == 0 and steps[0].kl == 0 and math.isclose(steps[0].loss, math.log(2), rel_tol=1e-6)
    assert 0 < steps[1].margin < steps[2].margin and 0 < steps[1].kl < steps[2].kl
    assert steps[2].loss < steps[1].loss < steps[0].loss
    assert pm.model.stack.blocks[-1].mlp.W_out.weight.equal(before)
    view = run(LossesSettings(pair="en-add"), pm, trainer.policy, trained=True).result
    assert view.trained and view.chosen.kl_exact.sum() > 0


def test_stop_ends_a_dpo_job_in_the_training_queue():
    trainer = DPORun(ours("smollm2-135m"), LossesSettings(steps=50, trainable_layers=1))
    job = Job(trainer.steps, total=51, name="dpo-test").start()
    job.stop()
    assert job.join(timeout=120) and job.state in (STOPPED, DONE) and trainer.updates < 50
