"""The post-training lab's ``grpo`` tab: the reward rule, the PPO/DPO/GRPO table tied to explorer.sizing, one GRPO run
on SmolLM2 (the better answers rise, the worse fall), and the page in English and 中文, two links, a bad value."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.posttraining_grpo import (FORMAT_REWARD, GRPOSettings, checked, compare_methods, correct,
                                             params_of, reward, run_group)
from explorer.presets import REAL_MODELS
from explorer.sizing import kv_cache_bytes, model_states_bytes, weight_bytes
from tests.apptest_helpers import ok, through_router
from tests.conftest import ROOT
from tests.pretrained_models import ours


@pytest.mark.parametrize("answer, right", [
    ("23+58=81", True), ("The answer is 81.", True), ("23 + 58 = 81", True), ("82", False), ("810", False),
    ("23+58 = 80 or 81", False), ("no idea", False), ("81.5", False),
])
def test_the_reward_rule_reads_the_first_stated_result(answer, right):
    assert correct("23+58", answer) is right
    assert reward("23+58", answer, finished=True) == float(right) + FORMAT_REWARD
    assert reward("23+58", answer, finished=False) == float(right)


def test_the_method_table_is_the_sizing_formulas():
    n = REAL_MODELS["Llama-3-8B"].breakdown.total
    cfg = REAL_MODELS["Llama-3-8B"].cfg
    ppo, dpo, grpo = compare_methods("Llama-3-8B", 8)
    assert params_of("Llama-3-8B") == n
    assert (ppo.reward_model, ppo.value_model, dpo.reward_model, dpo.value_model, grpo.value_model) == \
        (True, True, False, False, False)
    assert (ppo.samples_per_prompt, dpo.samples_per_prompt, grpo.samples_per_prompt) == (1, 0, 8)
    trained, frozen = model_states_bytes(n).total, weight_bytes(n, "bf16")
    assert ppo.total_bytes == 2 * trained + 2 * frozen + kv_cache_bytes(cfg, 1, 1024, "bf16")
    assert dpo.total_bytes == trained + frozen
    assert grpo.total_bytes == trained + frozen + kv_cache_bytes(cfg, 8, 1024, "bf16")
    assert dpo.total_bytes < grpo.total_bytes < ppo.total_bytes


def test_bad_settings_fall_back_with_a_sentence():
    shown = checked(GRPOSettings(group=5))
    assert shown.error and "5" in shown.error and shown.settings.group == 8


def test_one_grpo_run_raises_the_answers_above_the_group_mean():
    """Seed 0 on 2+3 samples a group with right and wrong answers (a mixed group; checked here too), and four updates
    move every answer's log-probability in the direction of its advantage."""
    result = run_group(GRPOSettings(problem="2+3", group=8, seed=0, updates=4), ours("smollm2-135m"))
    # The group is sampled with its own seeded generator; a token could only differ on another CPU if a cumulative
    # probability fell within float32 rounding (~1e-7) of the uniform draw, which 8 x 16 draws make negligible.
    advantages = [a.advantage for a in result.answers]
    assert max(advantages) > 0 > min(advantages), "the seed should give a mixed group"
    better = [a.change for a in result.answers if a.advantage > 0]
    worse = [a.change for a in result.answers if a.advantage < 0]
    # every better answer rises; the worse ones fall on average (they share the updated blocks with the better
    # ones, so one of them may be dragged along, but the objective pushes them down together)
    assert all(c > 0 for c in better) and sum(worse) / len(worse) < 0, (better, worse)
    assert result.kls[0] == 0 and result.kls[-1] > 0


def _page(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "labs/posttraining.py"), default_timeout=300)
    at.query_params.update(tab="grpo", **query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_tab_in_english_shows_the_table():
    at = _page()
    assert at.subheader[0].value == t("en", "posttraining_grpo.compare_header")
    table = at.dataframe[0].value
    assert list(table.iloc[:, 0]) == [t("en", f"posttraining_grpo.method.{m}") for m in ("ppo", "dpo", "grpo")]
    assert at.button(key="posttraining_grpo.go").label == t("en", "posttraining_grpo.run")


def _chinese() -> AppTest:
    """Through the app's shell, which reads ``?lang=``: the language is the app's control, not the page's."""
    return ok(through_router("labs/posttraining.py", 300, lang="zh", tab="grpo"))


def test_the_tab_in_chinese():
    at = _chinese()
    assert at.subheader[0].value == t("zh", "posttraining_grpo.compare_header")
    assert at.button(key="posttraining_grpo.go").label == t("zh", "posttraining_grpo.run")


def test_a_link_sets_the_problem_and_the_group():
    at = _page(problem="23+58", group="4", seed="7")
    assert at.selectbox(key="posttraining_grpo.problem").value == "23+58"
    assert at.select_slider(key="posttraining_grpo.group").value == 4
    assert at.number_input(key="posttraining_grpo.seed").value == 7
    assert dict(at.query_params) == {"tab": "grpo", "problem": "23+58", "group": "4", "seed": "7"}


def test_a_link_sets_the_model_of_the_table():
    at = _page(compare_model="Llama-2-70B", group="16")
    assert at.selectbox(key="posttraining_grpo.compare_model").value == "Llama-2-70B"
    n = REAL_MODELS["Llama-2-70B"].breakdown.total
    assert f"{model_states_bytes(n).total / 1e9:,.1f}" in list(at.dataframe[0].value.iloc[:, 5])
    assert dict(at.query_params) == {"tab": "grpo", "compare_model": "Llama-2-70B", "group": "16"}


def test_a_bad_value_is_named_and_the_default_shown():
    at = _page(group="5")
    assert any("group" in str(w.value) and "5" in str(w.value) for w in at.warning)
    assert at.select_slider(key="posttraining_grpo.group").value == 8


def test_a_run_from_the_page_shows_the_group_and_how_each_answer_moved():
    """Press the button: the job (in the training queue) samples, scores and updates; once it is done the page
    shows the answers' table with the after/change columns and the chart of the changes."""
    import json
    import time

    from explorer.jobs import DONE

    at = _page(problem="2+3", group="4", updates="1")
    at.button(key="posttraining_grpo.go").click().run()
    job = at.session_state["posttraining_grpo.state"].current.job
    assert job.join(timeout=600) and job.state == DONE, job.error
    at.run()
    time.sleep(0.1)
    at.run()  # the fragment's one redraw after the end
    assert not at.exception, [e.value for e in at.exception]
    answers = at.dataframe[0].value
    assert len(answers) == 4 and t("en", "posttraining_grpo.col.change") in answers.columns
    result = job.latest.result
    assert list(answers[t("en", "posttraining_grpo.col.reward")]) == [a.reward for a in result.answers]
    titles = [json.loads(c.proto.spec)["layout"]["xaxis"]["title"]["text"] for c in at.get("plotly_chart")]
    assert t("en", "posttraining_grpo.fig.change_axis") in titles
