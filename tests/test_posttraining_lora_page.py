"""The post-training lab's LoRA tab as a student opens it: in English and in 中文, from links that set its controls
(kept in the address), a bad link value named and replaced by the default; and the counts it shows equal the
library's (no number typed by hand)."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.posttraining_lora import LoraSettings, counts
from tests.conftest import ROOT, shown_text

KEY = "posttraining_lora.{}".format


def _page(**query) -> AppTest:
    """The page alone (English: AppTest has no browser locale), or through app.py when the link names a language."""
    if "lang" in query:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.query_params.update({"tab": "lora", **query})
        at.run()
        return at.switch_page("labs/posttraining.py").run()
    at = AppTest.from_file(str(ROOT / "labs/posttraining.py"), default_timeout=180)
    at.query_params.update({"tab": "lora", **query})
    return at.run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _facts(lang: str, s: LoraSettings) -> str:
    c = counts(s.preset, s.targets, s.rank)
    return t(lang, "posttraining_lora.facts", model=c.preset, r=c.rank, targets=", ".join(c.targets),
             trainable=c.chosen.trainable, full=c.full.trainable, share=100.0 * c.chosen.trainable / c.full.trainable,
             saving=c.saving, lora_gb=c.chosen.total / 1e9, full_gb=c.full.total / 1e9, ratio=c.memory_ratio,
             scaling=s.scaling)


def test_english_page_shows_the_counts_of_the_defaults():
    at = _ok(_page())
    assert at.slider(key=KEY("rank")).value == LoraSettings().rank
    assert at.multiselect(key=KEY("targets")).value == list(LoraSettings().targets)
    assert _facts("en", LoraSettings()) in _captions(at)
    assert t("en", "posttraining_lora.fig.trainable_title", model="SmolLM2-135M") in _titles(at)
    assert at.button(key="posttraining_lora.start_btn").label == t("en", "posttraining_lora.start")


def test_chinese_page():
    at = _ok(_page(lang="zh"))
    assert at.slider(key=KEY("rank")).label == t("zh", "posttraining_lora.rank")
    assert t("zh", "posttraining_lora.fig.memory_title", model="SmolLM2-135M") in _titles(at)
    assert _facts("zh", LoraSettings()) in _captions(at)
    assert at.subheader[0].value == t("zh", "posttraining_lora.finetune_header")


def test_a_link_to_llama_7b_at_rank_64_on_every_projection():
    query = dict(preset="LLaMA-7B", rank="64", alpha="128", targets="q,k,v,o,gate,up,down")
    at = _ok(_page(**query))
    assert at.selectbox(key=KEY("preset")).value == "LLaMA-7B"
    assert at.slider(key=KEY("rank")).value == 64 and at.number_input(key=KEY("alpha")).value == 128
    assert at.multiselect(key=KEY("targets")).value == ["q", "k", "v", "o", "gate", "up", "down"]
    s = LoraSettings(preset="LLaMA-7B", rank=64, alpha=128, targets=("q", "k", "v", "o", "gate", "up", "down"))
    assert _facts("en", s) in _captions(at)
    for name, value in query.items():
        assert at.query_params[name] == [value] or at.query_params[name] == value


def test_a_link_to_gpt3_with_the_papers_rank_and_a_finetune_setting():
    at = _ok(_page(preset="GPT-3 175B", rank="4", targets="o,v,q", steps="5", lr="0.001", lang="zh"))
    assert at.selectbox(key=KEY("preset")).value == "GPT-3 175B"
    assert at.multiselect(key=KEY("targets")).value == ["q", "v", "o"]  # in TARGETS' order, whatever the link's
    assert at.number_input(key=KEY("steps")).value == 5 and at.select_slider(key=KEY("lr")).value == 1e-3
    assert t("zh", "posttraining_lora.fig.trainable_title", model="GPT-3 175B") in _titles(at)
    assert at.query_params["targets"] in (["q,v,o"], "q,v,o")


def test_a_bad_rank_warns_and_shows_the_default():
    at = _ok(_page(rank="99"))
    assert at.slider(key=KEY("rank")).value == LoraSettings().rank
    assert any("rank" in shown_text(str(w.value)) and "99" in shown_text(str(w.value)) for w in at.warning)


def test_a_gate_on_gpt3_is_refused_with_a_sentence():
    at = _ok(_page(preset="GPT-3 175B", targets="q,gate"))
    shown = [shown_text(str(e.value)) for e in at.error]
    assert any("GPT-3 175B" in e and "gate" in e for e in shown), shown
    assert t("en", "posttraining_lora.fig.trainable_title", model="GPT-3 175B") in _titles(at)


def test_a_fine_tune_of_my_trained_model_runs_in_the_background_and_shows_its_answers_and_size():
    import time

    from tests.test_posttraining_lora_lab import tiny_model

    model = tiny_model()
    at = AppTest.from_file(str(ROOT / "labs/posttraining.py"), default_timeout=180)
    at.session_state["training.my_model"] = model
    at.query_params.update(tab="lora", model="trained", steps="3", rank="2")
    _ok(at.run())
    assert at.selectbox(key=KEY("model")).value == "trained"
    _ok(at.button(key="posttraining_lora.start_btn").click().run())
    run = at.session_state["posttraining_lora.run"]
    assert run.job.join(timeout=120) and run.job.state == "done"
    time.sleep(0.1)
    _ok(at.run())
    captions = _captions(at)
    after = run.job.history()[-1]
    assert t("en", "posttraining_lora.status.done", step=3, total=3) in [p.proto.text for p in at.get("progress")]
    assert f"{after.adapter_bytes:,} bytes" in captions and f"{after.optimizer_bytes:,} bytes" in captions
    assert t("en", "posttraining_lora.fig.loss_title") in _titles(at)
    assert t("en", "posttraining_lora.merged", diff=after.merge_diff, scale=after.logit_scale) in captions
    shown = at.dataframe[-1].value
    assert list(shown[t("en", "posttraining_lora.answers.prompt")]) == list(after.answers.prompts)
    assert list(shown[t("en", "posttraining_lora.answers.after")]) == list(after.answers.texts)


def test_starting_without_a_trained_model_says_so():
    at = _ok(_page(model="trained"))
    assert t("en", "posttraining_lora.no_trained") in _captions(at)
    _ok(at.button(key="posttraining_lora.start_btn").click().run())
    assert any(t("en", "posttraining_lora.no_trained") in shown_text(str(e.value)) for e in at.error)
