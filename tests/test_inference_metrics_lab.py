"""The metrics tab's library (explorer.labs.inference_metrics): settings checked in one place, a nearest view for
every bad value, and what run_metrics computes, on a tiny random decoder (context 128, bytes as tokens) so the
window and the caps are reached quickly. The metrics themselves are checked in tests/test_inference_metrics.py."""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest

from explorer.labs.inference_metrics import (
    EXAMPLES, MAX_PAIR_CHARS, MAX_TEXT_CHARS, MAX_TOKENS, OWN, PAIRS, MetricsSettings, min_stride, nearest,
    run_metrics, shuffle_words,
)
from explorer.metrics import corpus_bleu, perplexity, rouge, sentence_bleu
from explorer.models.tiny import load_tiny


@lru_cache(maxsize=1)
def _tiny():
    return load_tiny("tiny-llama", seed=0)


def test_default_settings_are_valid_and_run():
    out = run_metrics(MetricsSettings(window=128, stride=64), _tiny())
    assert out.ok and out.result is not None
    read = out.result.text
    assert read.text == EXAMPLES["attention_en"]
    ids = _tiny().tokenizer.encode(read.text)
    assert read.scored.ids == tuple(ids) and len(read.labels) == len(ids)
    # the tab's text is read exactly as explorer.metrics.perplexity reads it
    direct = perplexity(_tiny().model, ids, 128, 64)
    np.testing.assert_array_equal(read.scored.losses, direct.losses)
    assert read.scored.perplexity == pytest.approx(math.exp(np.nanmean(direct.losses)))


def test_comparison_has_every_example_fluent_and_shuffled_and_the_own_text():
    rows = run_metrics(MetricsSettings(window=128, stride=64), _tiny()).result.compared
    assert [(r.example, r.shuffled) for r in rows] == [(e, s) for e in EXAMPLES for s in (False, True)]
    own = run_metrics(MetricsSettings(example=OWN, text="my own words here", window=128, stride=64), _tiny())
    assert [(r.example, r.shuffled) for r in own.result.compared][-2:] == [(OWN, False), (OWN, True)]
    for r in rows:
        assert r.perplexity == pytest.approx(math.exp(r.mean_loss))
        assert r.loss_per_char == pytest.approx(r.mean_loss * r.n_scored / r.n_chars)


def test_shuffled_words_keep_the_words_and_lose_the_order():
    text = EXAMPLES["attention_en"]
    shuffled = shuffle_words(text, 3)
    assert Counter(shuffled.split()) == Counter(text.split()) and shuffled != text
    assert shuffle_words(text, 3) == shuffled  # the seed decides
    zh = EXAMPLES["residual_zh"]
    assert Counter(shuffle_words(zh, 0)) == Counter(zh) and shuffle_words(zh, 0) != zh


def test_empty_own_text_is_named_and_the_first_example_shown():
    out = run_metrics(MetricsSettings(example=OWN, text="   "), _tiny())
    assert out.error is not None and "Type a text" in out.error
    assert out.settings.example == MetricsSettings().example and out.result is not None


def test_a_text_past_the_box_is_named_and_cut():
    out = run_metrics(MetricsSettings(example=OWN, text="ab " * MAX_TEXT_CHARS, window=128, stride=64), _tiny())
    assert out.error is not None and str(MAX_TEXT_CHARS) in out.error.replace(",", "")
    assert len(out.settings.text) == MAX_TEXT_CHARS and "cut" in out.fallback


def test_tokens_past_the_cap_are_cut_and_counted():
    text = "x" * (MAX_TOKENS + 100)  # bytes as tokens: one token per character
    out = run_metrics(MetricsSettings(example=OWN, text=text, window=128, stride=128), _tiny())
    scored = out.result.text.scored
    assert out.ok and scored.truncated and len(scored.ids) == MAX_TOKENS
    assert scored.n_original == MAX_TOKENS + 100
    # 512 tokens in windows of 128 that do not overlap: each window's first token has no context and is unscored
    assert scored.n_windows == 4 and scored.n_scored == MAX_TOKENS - 4


def test_a_window_past_the_context_falls_back_to_the_longest_that_fits():
    out = run_metrics(MetricsSettings(window=512, stride=256), _tiny())
    assert out.error is not None and "128" in out.error
    assert out.settings.window == 128 and min_stride(128) <= out.settings.stride <= 128
    assert out.result.text.scored.window == 128


@pytest.mark.parametrize("bad", [dict(window=100), dict(stride=1, window=256), dict(stride=300), dict(seed=-1),
                                 dict(smooth="laplace"), dict(pair="nope"), dict(example="nope"),
                                 dict(model="gpt-5"), dict(reference="x" * (MAX_PAIR_CHARS + 1))])
def test_every_bad_value_is_named_and_its_nearest_valid_one_shown(bad):
    requested = MetricsSettings(**bad)
    with pytest.raises(ValueError):
        requested.validate()
    used = nearest(requested)
    used.validate()
    out = run_metrics(requested, _tiny())
    assert out.error is not None and out.result is not None and out.fallback


def test_pairs_are_scored_as_the_metrics_module_scores_them():
    for name, (ref, hyp) in PAIRS.items():
        out = run_metrics(MetricsSettings(pair=name, window=128, stride=64), _tiny())
        pair = out.result.pair
        assert pair.bleu.score == sentence_bleu(hyp, [ref]).score and pair.rouge == rouge(hyp, ref)
        chinese = name.endswith("_zh")
        assert pair.bleu.tokenize == ("zh" if chinese else "13a")
        corpus = out.result.corpus
        assert all(p.endswith("_zh") == chinese for p in corpus.pairs)
        expected = corpus_bleu([PAIRS[p][1] for p in corpus.pairs], [[PAIRS[p][0]] for p in corpus.pairs])
        assert corpus.corpus.score == expected.score


def test_own_pair_with_an_empty_hypothesis_scores_zero_without_error():
    out = run_metrics(MetricsSettings(pair=OWN, reference="the cat sat on the mat", hypothesis="", window=128,
                                      stride=64), _tiny())
    assert out.ok
    assert out.result.pair.bleu.score == 0.0 and out.result.pair.rouge["rouge1"].f1 == 0.0
