"""explorer.labs.inference_speculative: both runs in one call, the identical-output check, the acceptance numbers
tied to the rounds, and every bad input turned into a sentence and a fallback (never an exception)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from explorer.bpe import CharTokenizer
from explorer.config import ModelConfig
from explorer.labs.inference_speculative import (EXAMPLES, MAX_FORWARDS, SpeculativeSettings, run_speculative,
                                                 worst_case_forwards)
from explorer.labs.training_data import TrainedTokenizer
from explorer.labs.training_io import trained_model
from explorer.model import Transformer
from explorer.models.token_labels import sequence_labels
from explorer.speculative import expected_tokens_per_forward
from tests.pretrained_models import ours


@pytest.fixture(scope="module")
def smol():
    return ours("smollm2-135m")


@pytest.fixture(scope="module")
def trained():
    """A student's model as the training lab leaves it: a character tokenizer, 4 layers; weights from a seed,
    scaled so its text varies with the context (see tests/test_inference_speculative.py's sharp_tiny)."""
    text = "abcdefghijklmnopqrstuvwxyz ,.!?今天气很好我们去公园散步" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    tok = TrainedTokenizer(CharTokenizer.from_text(text))
    cfg = ModelConfig(n_layer=4, d_model=32, n_head=4, d_ff=64, vocab_size=tok.vocab_size, max_seq_len=128,
                      activation="swiglu", norm="rmsnorm", positional="rope", bias=False)
    model = Transformer.from_seed(cfg, 0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return trained_model(model, tok, name="trained")


def test_default_run_on_smollm2_is_identical_and_faster_per_forward(smol):
    out = run_speculative(SpeculativeSettings(max_new_tokens=24), smol)
    assert out.ok and out.fallback is None
    r = out.result
    assert r.identical and r.first_difference is None and r.text_spec == r.text_plain
    assert len(r.spec.tokens) == len(r.plain.tokens) == 24
    # the numbers the page shows are the rounds' own counts
    assert r.alpha == sum(v.accepted for v in r.rounds) / sum(len(v.proposed) for v in r.rounds)
    assert r.spec.tokens_per_forward == 24 / len(r.rounds) > 1.0  # the copy task: more than one token a forward
    assert r.expected_tokens_per_forward == expected_tokens_per_forward(r.alpha, 4)
    assert r.speedup == r.spec.tokens_per_second / r.plain.tokens_per_second
    assert [len(v.proposed) for v in r.rounds] == [len(x.proposed) for x in r.spec.rounds]
    assert r.draft_cost == 0.0 and r.prompt_tokens == len(r.prompt_labels)


def test_trained_model_as_target_with_both_of_its_own_drafts(trained):
    for draft in ("prompt_lookup", "early_exit"):
        s = SpeculativeSettings(prompt="abcabcabc", chat=False, model="trained", draft=draft, exit_layers=2, k=3,
                                max_new_tokens=30)
        out = run_speculative(s, trained)
        assert out.ok, out.error
        assert out.result.identical, (out.result.first_difference, out.result.gap_there)
        assert out.result.draft_cost == (0.0 if draft == "prompt_lookup" else 0.5)


def test_smollm2_cannot_use_the_trained_model_as_its_draft(smol, trained):
    s = SpeculativeSettings(draft="trained", max_new_tokens=8)
    out = run_speculative(s, smol, trained)
    assert "49,152" in out.error and f"{trained.config.vocab_size:,}" in out.error  # why: the vocabularies
    assert out.settings.draft == "prompt_lookup" and out.result is not None and out.result.identical


def test_missing_trained_model_is_a_sentence():
    out = run_speculative(SpeculativeSettings(model="trained"), None)
    assert out.result is None and "training lab" in out.error


def test_a_trained_model_is_not_its_own_draft(trained):
    s = SpeculativeSettings(prompt="abc", chat=False, model="trained", draft="trained", max_new_tokens=4)
    out = run_speculative(s, trained, trained)
    assert "own draft" in out.error and out.settings.draft == "prompt_lookup"


@pytest.mark.parametrize("change,field,used", [
    (dict(k=99), "k", 8), (dict(ngram=0), "ngram", 1), (dict(max_new_tokens=10_000), "max_new_tokens", 96),
    (dict(draft="nonsense"), "draft", "prompt_lookup"), (dict(exit_layers=4), "exit_layers", 3),
])
def test_bad_controls_fall_back_with_a_sentence(trained, change, field, used):
    s = dataclasses.replace(SpeculativeSettings(prompt="abcabc", chat=False, model="trained", max_new_tokens=6,
                                                draft="early_exit", exit_layers=1), **change)
    out = run_speculative(s, trained)
    assert out.error and getattr(out.settings, field) == used and out.result is not None


def test_chat_on_a_model_without_chat_reads_plain_text(trained):
    out = run_speculative(SpeculativeSettings(prompt="abc", chat=True, model="trained", max_new_tokens=4), trained)
    assert "no chat format" in out.error and out.settings.chat is False and out.result is not None


def test_too_costly_early_exit_is_cut_to_the_budget(smol):
    s = SpeculativeSettings(draft="early_exit", exit_layers=29, k=8, max_new_tokens=96)
    assert worst_case_forwards(s, 30) > MAX_FORWARDS
    # validation alone (no run): the fallback is checked without paying for it
    with pytest.raises(ValueError, match="limit"):
        s.validate(smol)
    from explorer.labs.inference_speculative import nearest
    used = nearest(s, smol)
    used.validate(smol)
    assert used.draft == "early_exit" and worst_case_forwards(used, 30) <= MAX_FORWARDS


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 5000])
def test_prompt_that_cannot_be_read_gets_a_sentence_and_no_result(smol, prompt):
    out = run_speculative(SpeculativeSettings(prompt=prompt), smol)
    assert out.result is None and out.error


def test_worst_case_forwards():
    s = SpeculativeSettings(draft="early_exit", exit_layers=6, k=5, max_new_tokens=10)
    assert worst_case_forwards(s, 30) == 10 + 10 * 2  # 5 draft forwards of 6/30 each = one target forward
    assert worst_case_forwards(dataclasses.replace(s, draft="prompt_lookup"), 30) == 20


def test_examples_fit_the_limits(smol):
    for text, chat in EXAMPLES.values():
        SpeculativeSettings(prompt=text, chat=chat).validate(smol)


def test_round_labels_are_the_texts_own_labels_in_chinese(smol):
    text, chat = EXAMPLES["chinese"]
    out = run_speculative(SpeculativeSettings(prompt=text, chat=chat, max_new_tokens=16), smol)
    r = out.result
    shown = [label for v in r.rounds for label in v.proposed[:v.accepted] + (v.target,)]
    ids = smol.tokenizer.chat_ids(text)
    # A Chinese character split over two tokens is named in each part ('气₁/₂') as the generation lab names it.
    assert shown == sequence_labels(smol.tokenizer, ids + list(r.spec.tokens))[len(ids):]
    assert r.identical
