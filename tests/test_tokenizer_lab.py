"""The tokenizer lab's library (explorer/labs/tokenizer*.py): settings checked in one place with a sentence for the
student, the step view consistent with the trainer, and the comparisons consistent with the tokenizers they show."""
from __future__ import annotations

import dataclasses

import pytest

from explorer.bpe import train_bpe
from explorer.corpora import load_corpus
from explorer.i18n import Msg
from explorer.labs.tokenizer import (
    TokenizerSettings, excerpt, fallback, nearest, run, step_view, train, train_others, unseen_character,
)
from explorer.labs.tokenizer_compare import CONTEXT_WINDOW, compare_algorithms
from explorer.limits import TOKENIZER_MAX_CORPUS_CHARS, TOKENIZER_MAX_MERGES, TOKENIZER_MAX_TEXT_CHARS
from explorer.models.real_tokenizers import REAL_TOKENIZERS, tokenize

SMALL = dict(merges=20, step=3)


@pytest.fixture(scope="module")
def outcome():
    return run(TokenizerSettings(**SMALL))


BAD = [
    (dict(corpus="custom", text=""), "tokenizer.error.empty_corpus"),
    (dict(corpus="custom", text=" \n "), "tokenizer.error.empty_corpus"),
    (dict(corpus="custom", text="x" * (TOKENIZER_MAX_CORPUS_CHARS + 1)), "checks.text_too_long"),
    (dict(corpus="novels"), "checks.one_of"),
    (dict(merges=0), "checks.whole_between"),
    (dict(merges=TOKENIZER_MAX_MERGES + 1), "checks.whole_between"),
    (dict(merges=10**9), "checks.whole_between"),
    (dict(merges=2.5), "checks.whole_between"),
    (dict(merges=20, step=21), "checks.whole_between"),
    (dict(alphabet="word"), "checks.one_of"),
    (dict(sentence=""), "tokenizer.error.empty_text"),
    (dict(english="   "), "tokenizer.error.empty_text"),
    (dict(chinese="床" * (TOKENIZER_MAX_TEXT_CHARS + 1)), "checks.text_too_long"),
    (dict(d_model=0), "checks.whole_between"),
]


@pytest.mark.parametrize("changes, key", BAD)
def test_bad_settings_get_a_sentence_and_the_nearest_view(changes, key):
    settings = TokenizerSettings(**{**SMALL, **changes})
    with pytest.raises(ValueError) as err:
        settings.validate()
    assert isinstance(err.value.args[0], Msg) and err.value.args[0].key == key
    assert err.value.args[0].say("zh") != err.value.args[0].key  # said in Chinese too
    used = nearest(settings)
    used.validate()
    assert all(getattr(used, f.name) == getattr(settings, f.name) for f in dataclasses.fields(used)
               if f.name not in changes and f.name != "step")


def test_bad_settings_in_run_show_the_nearest_view():
    shown = run(TokenizerSettings(corpus="custom", text="", merges=0, step=5))
    assert shown.error.key == "tokenizer.error.empty_corpus" and shown.result is not None
    assert shown.settings.corpus == "tangshi" and shown.settings.merges == 1 and shown.settings.step == 1
    assert "corpus = tangshi" in shown.fallback


def test_step_view_matches_the_trainer():
    text = load_corpus("tangshi")
    tok = train("tangshi", "", 30, "byte")
    for step in (0, 1, 17, 30):
        view = step_view(tok, text, step, 30, "床前明月光")
        assert view.vocab[step] == 256 + step and view.lengths[step] == len(tok.encode(text, merges=step))
        assert "".join(view.excerpt_after).count("↵") == excerpt(text).count("\n")
        if step:
            s = tok.steps[step - 1]
            assert view.pairs[0].chosen and view.pairs[0].count == s.count
            assert view.new_piece == tok.piece(s.new_id)
            assert len(view.excerpt_after) <= len(view.excerpt_before)
        else:
            assert view.pairs == () and view.new_piece is None


def test_pasted_corpus_trains_on_the_pasted_text():
    pasted = "low lower lowest newer newest wider " * 20
    shown = run(TokenizerSettings(corpus="custom", text=pasted, merges=5, step=1, alphabet="char"))
    assert shown.ok
    assert shown.result.steps.lengths[0] == sum(len(c) for c in pasted)  # one token per character, none merged
    assert shown.result.steps.pairs[0].count == train_bpe(pasted, 1, byte_level=False).steps[0].count


def test_fallback_shows_the_three_ways():
    corpus = load_corpus("tangshi")
    char = unseen_character(corpus, "床前明月光🙂")
    assert char == "🙂"
    fb = fallback(corpus, char, train_bpe(corpus[:3000], 5), train_bpe(corpus[:3000], 5, byte_level=False))
    assert fb.byte_level == fb.byte_fallback == ("🙂₁/₄", "🙂₂/₄", "🙂₃/₄", "🙂₄/₄")
    assert fb.char_unk == ("<unk>",) and fb.char_unk_decoded == "\ufffd"
    assert unseen_character(corpus, "床前明月光") == "龘"  # every character seen: a rare one instead


def test_algorithms_split_the_sentence_back_into_it():
    tok = train("shakespeare", "", 100, "char")
    splits = compare_algorithms(tok, train_others("shakespeare", "", 100), "Shall I compare thee")
    by = {s.algorithm: s for s in splits.splits}
    assert "".join(p.removeprefix("##") for p in by["wordpiece"].pieces) == "Shall I compare thee"
    assert "".join(by["unigram"].pieces) == "Shall I compare thee"
    assert len(by["bpe"].pieces) == len(tok.encode("Shall I compare thee"))
    assert not any(by["bpe"].unknown) and by["bpe"].vocab_size == tok.vocab_size


def test_real_rows_and_cost_match_the_tokenizers(outcome):
    result = outcome.result
    settings = outcome.settings
    assert [r.name for r in result.real] == list(REAL_TOKENIZERS)
    for k, name in enumerate(REAL_TOKENIZERS):
        assert result.real[k].n_tokens == tokenize(name, settings.sentence).n_tokens
        assert result.cost.chinese[k] == tokenize(name, settings.chinese).n_tokens
        assert result.cost.english[k] == tokenize(name, settings.english).n_tokens
        assert result.cost.fits(k) == int(CONTEXT_WINDOW * len(settings.chinese) / result.cost.chinese[k])
    gpt2, qwen = REAL_TOKENIZERS.index("gpt2"), REAL_TOKENIZERS.index("qwen")
    assert result.cost.ratio[qwen] < result.cost.ratio[gpt2]  # the lab's point, from the default texts


def test_trade_off_uses_the_sizing_numbers(outcome):
    from explorer.presets import REAL_MODELS

    trade = outcome.result.trade_off
    assert (trade.embedding == trade.vocab * trade.d_model).all()
    smollm2 = next(p for p in trade.points if p.model == "SmolLM2-135M")
    assert smollm2.model_embedding == 49152 * 576 == REAL_MODELS["SmolLM2-135M"].breakdown.part("token embedding")
    assert (trade.lengths[1:] <= trade.lengths[:-1]).all()  # a merge never lengthens the corpus
