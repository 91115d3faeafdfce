"""explorer.labs.generation: the settings are checked in one place, run() answers every input with an outcome, a
run starts from an outcome, and the numbers shown about a run are computed once."""
from __future__ import annotations

import dataclasses

import pytest

from explorer import limits
from explorer.generation import SpeedReport, generate, tokens_per_second
from explorer.labs import generation as lab
from explorer.labs.generation import GenerationSettings
from explorer.models.tiny import load_tiny
from explorer.sampling import SamplingSettings
from tests.pretrained_models import ours


@pytest.fixture(scope="module")
def tiny():
    return load_tiny("tiny-gpt")


@pytest.fixture(scope="module")
def smol():
    return ours("smollm2-135m")


def tiny_settings(**changes) -> GenerationSettings:
    return GenerationSettings(**{"model": "tiny-gpt", "chat": False, **changes})


# ---------------------------------------------------------------------------------------------------------------
# validate(): the settings alone, then against the model.


def test_the_page_defaults_are_valid_settings():
    GenerationSettings().validate()
    assert GenerationSettings().sampling() == SamplingSettings(temperature=0.7, top_p=0.9)


@pytest.mark.parametrize("changes,match", [
    (dict(model="gpt-5"), "model must be one of smollm2-135m, tiny-gpt, tiny-llama"),
    (dict(chat="yes"), "chat must be one of True, False"),
    (dict(use_cache=None), "KV cache must be one of True, False"),
    (dict(prompt=None), "The prompt must be text"),
    (dict(prompt="x" * (limits.GENERATION_PROMPT_MAX_CHARS + 1)), "the box takes at most 4,000"),
    (dict(temperature=0.0), "temperature must be above 0"),  # the sampling checks come through validate()
    (dict(top_p=1.5), "top-p must be above 0 and at most 1"),
    (dict(max_new_tokens=limits.GENERATION_MAX_NEW_TOKENS + 1), "max new tokens must be a whole number from 1"),
    (dict(seed=-1), "seed must be"),
])
def test_settings_alone_are_refused_with_a_sentence(changes, match):
    with pytest.raises(ValueError, match=match):
        GenerationSettings(**changes).validate()


def test_a_prompt_at_the_box_limit_is_accepted():
    GenerationSettings(prompt="x" * limits.GENERATION_PROMPT_MAX_CHARS).validate()


def test_against_the_model_the_prompt_is_read_by_its_tokenizer(tiny, smol):
    tiny_settings(prompt="hello").validate(tiny)
    with pytest.raises(ValueError, match="Type a prompt first"):
        tiny_settings(prompt="   ").validate(tiny)
    # One byte, one token: 200 bytes fill the tiny model's 128-token context.
    with pytest.raises(ValueError, match="200 tokens long but this model reads at most 128"):
        tiny_settings(prompt="a" * 200).validate(tiny)
    with pytest.raises(ValueError, match="These settings are for tiny-gpt, not for smollm2-135m"):
        tiny_settings().validate(smol)
    long_prompt = "hello " * 600
    n = len(smol.tokenizer.encode(long_prompt, add_special_tokens=False))
    assert n > limits.GENERATION_MAX_PROMPT_TOKENS
    with pytest.raises(ValueError) as err:
        GenerationSettings(prompt=long_prompt, chat=False).validate(smol)
    assert str(err.value) == limits.prompt_too_long(n)
    GenerationSettings(prompt=long_prompt, chat=False).validate()  # the settings alone cannot know it


def test_without_the_cache_the_whole_run_must_fit_the_budget(tiny):
    prompt = "x" * 100
    n = limits.max_new_without_cache(100)
    tiny_settings(prompt=prompt, use_cache=False, max_new_tokens=n).validate(tiny)
    with pytest.raises(ValueError) as err:
        tiny_settings(prompt=prompt, use_cache=False, max_new_tokens=n + 1).validate(tiny)
    assert str(err.value) == limits.no_cache_too_long(100, n + 1)
    tiny_settings(prompt=prompt, use_cache=True, max_new_tokens=n + 1).validate(tiny)


# ---------------------------------------------------------------------------------------------------------------
# run(): an outcome for every input.


def test_run_reads_the_prompt_as_the_model_does(tiny, smol):
    out = lab.run(tiny, tiny_settings(prompt="今天"))
    assert out.ok and out.fallback is None and out.settings == tiny_settings(prompt="今天")
    assert list(out.result.ids) == list("今天".encode()) and out.result.text == "今天" and not out.result.chat
    chat = lab.run(smol, GenerationSettings(prompt="hi"))
    assert chat.ok and chat.result.chat and chat.result.text == "hi"
    assert list(chat.result.ids) == smol.tokenizer.chat_ids("hi")
    assert "<|im_start|>" in "".join(chat.result.labels)


def test_chat_on_a_model_without_a_template_falls_back_to_plain_completion(tiny):
    requested = dataclasses.replace(tiny_settings(prompt="hello"), chat=True)
    out = lab.run(tiny, requested)
    assert out.ok and out.error is None
    assert out.fallback == "tiny-gpt has no chat template (it was never fine-tuned to chat): using plain completion."
    assert out.settings == dataclasses.replace(requested, chat=False) and not out.result.chat


def test_a_run_over_the_budget_still_shows_its_prompt_but_cannot_start(tiny):
    out = lab.run(tiny, tiny_settings(prompt="x" * 100, use_cache=False, max_new_tokens=256))
    assert not out.ok and out.error.startswith("Without the KV cache")
    assert len(out.result) == 100  # what the model would read, shown beside the error
    with pytest.raises(ValueError, match="No run can start"):
        lab.start_run(tiny, out)


@pytest.mark.parametrize("changes", [
    dict(prompt=""), dict(prompt="a" * 200), dict(prompt=None), dict(model="nope"), dict(seed="x"),
    dict(temperature=float("nan")), dict(chat=1.5),
])
def test_run_never_raises_for_bad_input(tiny, changes):
    out = lab.run(tiny, tiny_settings(**changes))
    assert not out.ok and out.result is None and out.error
    assert out.settings == tiny_settings(**changes)  # the settings as asked for: nothing to fall back to


def test_a_run_starts_from_the_outcome_and_matches_the_engine(tiny):
    settings = tiny_settings(prompt="hello", greedy=True, max_new_tokens=6)
    out = lab.run(tiny, settings)
    steps = list(lab.start_run(tiny, out))
    direct = list(generate(tiny.model, tiny.tokenizer, "hello", SamplingSettings(greedy=True, max_new_tokens=6)))
    assert [s.token_id for s in steps] == [s.token_id for s in direct]
    assert all(s.attention is not None for s in steps)  # the page's attention view needs every step's rows


# ---------------------------------------------------------------------------------------------------------------
# The numbers about a run.


def test_tokens_per_second_leaves_out_the_first_token():
    assert tokens_per_second([0.5, 0.1, 0.1, 0.2]) == pytest.approx(3 / 0.4)
    assert tokens_per_second([0.25]) == pytest.approx(4.0)  # a single token is all there is
    assert SpeedReport(use_cache=True, seconds=(0.5, 0.1, 0.3)).tokens_per_second == pytest.approx(2 / 0.4)


def test_summary_of_a_run(tiny):
    run = lab.start_run(tiny, lab.run(tiny, tiny_settings(prompt="hello", max_new_tokens=5)))
    steps = list(run)
    s = lab.summarize(steps)
    seconds = [st.seconds for st in steps]
    assert s.n_tokens == 5 and s.text == run.text
    assert s.tokens_per_second == pytest.approx(4 / sum(seconds[1:]))
    assert s.first_token_ms == pytest.approx(1000 * seconds[0])
    assert s.mean_entropy_bits == pytest.approx(sum(st.model_entropy for st in steps) / 5)
    assert s.finish == "it reached the maximum number of new tokens"
    assert lab.summarize(steps[:2]).finish is None
    with pytest.raises(ValueError, match="generate some tokens first"):
        lab.summarize([])


def test_the_cache_comparison_times_the_same_tokens_both_ways(tiny):
    run = lab.start_run(tiny, lab.run(tiny, tiny_settings(prompt="x" * 80, max_new_tokens=45)))
    assert len(list(run)) == 45
    n = lab.replay_length(run)
    # Without the cache the replay re-reads the text: 80 prompt tokens allow fewer than the 45 generated.
    assert n == limits.max_new_without_cache(80) < 45
    cmp = lab.compare_cache(run, n)
    assert cmp.on.use_cache and not cmp.off.use_cache
    assert len(cmp.on.seconds) == len(cmp.off.seconds) == n
    assert cmp.speedup == pytest.approx(cmp.on.tokens_per_second / cmp.off.tokens_per_second)
    short = lab.start_run(tiny, lab.run(tiny, tiny_settings(prompt="hi", max_new_tokens=60)))
    list(short)
    assert lab.replay_length(short) == lab.REPLAY_MAX
