"""explorer.speculative: speculative decoding with greedy verification gives plain greedy's text, token for token,
whatever the draft and k (a tiny random model exhaustively, SmolLM2 on English, Chinese and code), against our own
plain greedy, explorer.generation's reference loop and transformers' assisted generation (prompt lookup); the
early-exit draft against the model's own hooks; the KV-cache rollback; the acceptance model against enumeration."""
from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from explorer.generation import solo_generation
from explorer.labs.inference_speculative import EXAMPLES
from explorer.model import KVCache, Transformer
from explorer.models.tiny import load_tiny
from explorer.sampling import SamplingSettings
from explorer.speculative import (ModelDraft, PromptLookupDraft, expected_tokens_per_forward, greedy_decode,
                                  hidden_states, run_speculative_decode, speculative_decode, speedup_bound,
                                  truncate_cache, vocabularies_match)
from tests.greedy import assert_same_greedy, margins
from tests.numerics import EPS, reordered, row_scale, widest_sum
from tests.pretrained_models import ours

TINY_PROMPTS = ["hello hello hello world", "今天天气很好，今天天气", "abcabcabcab", "x"]
SMOL_PROMPTS = [  # (text, chat): a copy task (prompt lookup's good case), Chinese, code
    ("Fix the spelling and write the text out again: The quick brown fox jumpd over the lazy dog.", True),
    ("今天天气很好，我们去公园散步。今天天气", False),
    ("def add(a, b):\n    return a + b\n\ndef sub(a, b):\n", False),
]


def sharp_tiny(name: str, seed: int):
    """A tiny random decoder with every weight matrix scaled by 8. At GPT-2's initial scale its greedy text is one
    byte repeated, which any draft guesses; sharper weights make the text vary with its context, so drafts are
    rejected and the KV-cache rollback decides the output."""
    tm = load_tiny(name, seed=seed)
    model = Transformer.from_seed(tm.config, seed).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return dataclasses.replace(tm, model=model)


@pytest.fixture(scope="module")
def tiny():
    return sharp_tiny("tiny-llama", 0)


@pytest.fixture(scope="module")
def smol():
    return ours("smollm2-135m")


def tiny_drafts(tm):
    other = sharp_tiny("tiny-gpt", 1)  # another model on the same byte vocabulary: a "small draft model"
    return [PromptLookupDraft(), ModelDraft(tm.model, 1, "early_exit"), ModelDraft(tm.model, None, "same_model"),
            ModelDraft(other.model, None, "other_model")]


# ---- the acceptance model -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha,k", [(0.0, 3), (0.3, 1), (0.5, 4), (0.8, 6), (0.99, 8), (1.0, 5)])
def test_expected_tokens_per_forward_equals_enumeration(alpha, k):
    # A round accepts exactly a < k draft tokens with probability alpha^a (1 - alpha), all k with alpha^k; it
    # emits a + 1 tokens (the target's own token follows).
    enumerated = sum(alpha ** a * (1 - alpha) * (a + 1) for a in range(k)) + alpha ** k * (k + 1)
    assert expected_tokens_per_forward(alpha, k) == pytest.approx(enumerated, rel=1e-12)
    assert 1.0 <= expected_tokens_per_forward(alpha, k) <= k + 1


def test_speedup_bound_counts_the_draft_cost():
    assert speedup_bound(0.5, 4, 0.0) == expected_tokens_per_forward(0.5, 4)
    assert speedup_bound(0.0, 4, 0.25) == pytest.approx(0.5)  # nothing accepted, 4 draft forwards at 1/4 each
    with pytest.raises(ValueError):
        expected_tokens_per_forward(1.5, 2)


# ---- prompt lookup ------------------------------------------------------------------------------------------------

def test_prompt_lookup_prefers_the_longest_and_latest_match():
    draft = PromptLookupDraft(max_ngram=3)
    # "1 2" occurs twice; "7 1 2" (the longer n-gram) only once, followed by 9 9
    assert draft.propose([7, 1, 2, 9, 9, 1, 2, 5, 5, 7, 1, 2], 2) == [9, 9]
    # only the bigram "1 2": its latest earlier occurrence (followed by 5 5) wins over the first (followed by 9 9)
    assert draft.propose([1, 2, 9, 9, 1, 2, 5, 5, 3, 1, 2], 4) == [5, 5, 3, 1]
    assert draft.propose([1, 2, 3], 3) == []  # nothing repeats
    assert draft.propose([4, 4], 5) == [4]  # no more follows the match than the text holds
    assert draft.propose([5], 2) == []


# ---- the early-exit draft and the cache rollback -----------------------------------------------------------------

def test_early_exit_equals_the_models_own_layers(tiny, smol):
    for model, layers in ((tiny.model, 1), (smol.model, 6)):
        ids = torch.tensor(smol.tokenizer.encode("The cat sat on the mat.")) % model.cfg.vocab_size
        with torch.inference_mode():
            full = hidden_states(model, ids, None)
            assert torch.equal(full, model(ids.view(1, -1), head=False))  # every layer: the model's own forward
            early = hidden_states(model, ids, None, layers)
            _, cache = model.run_with_cache(ids.view(1, -1), names=[f"blocks.{layers - 1}.resid_post"])
        # The same modules on the same inputs in the same order: no rounding difference is possible.
        assert torch.equal(early, model.stack.ln_final(cache[f"blocks.{layers - 1}.resid_post"]))


def test_truncated_cache_continues_like_a_fresh_one(tiny):
    model, cfg = tiny.model, tiny.model.cfg
    ids = torch.tensor(tiny.tokenizer.encode("speculative decoding"))
    a, b, c = ids[:8], ids[8:13], ids[13:]
    with torch.inference_mode():
        cache = KVCache(cfg.n_layer)
        hidden_states(model, torch.cat([a, b]), cache)
        truncate_cache(cache, len(a))
        assert cache.length == len(a)
        after_rollback = hidden_states(model, c, cache)
        fresh = KVCache(cfg.n_layer)
        hidden_states(model, a, fresh)
        expected = hidden_states(model, c, fresh)
    # The kept keys came from a 13-token forward instead of an 8-token one: BLAS may sum those matmuls in another
    # order, a few float32 roundings per layer on values of the hidden state's scale (2 layers, d_model = 64).
    tol = reordered(cfg.n_layer, widest_sum(cfg)) * EPS * row_scale(expected).max().item()
    torch.testing.assert_close(after_rollback, expected, rtol=0, atol=tol)
    with pytest.raises(ValueError):
        truncate_cache(cache, cache.length + 1)


# ---- identical output: the tiny random model, every draft, k = 0 .. 6 ---------------------------------------------

def test_plain_greedy_equals_the_generation_labs_loop(tiny):
    for prompt in TINY_PROMPTS:
        ids = tiny.tokenizer.encode(prompt)
        ours_ = greedy_decode(tiny.model, ids, 30)
        ref = [s.token_id for s in solo_generation(tiny.model, tiny.tokenizer, ids,
                                                   SamplingSettings(greedy=True, max_new_tokens=30), stop_ids=[])]
        # explorer.generation reads the prompt in one forward, ours all but its last token: rounding may differ.
        assert_same_greedy(ours_.tokens, ref, margins(tiny.model, tiny.config, ids, ref), min_compared=1)


@pytest.mark.parametrize("prompt", TINY_PROMPTS)
def test_speculative_equals_greedy_on_a_tiny_random_model(tiny, prompt):
    ids = tiny.tokenizer.encode(prompt)
    plain = greedy_decode(tiny.model, ids, 40)
    m = margins(tiny.model, tiny.config, ids, plain.tokens)
    for draft, k in itertools.product(tiny_drafts(tiny), range(7)):
        run = run_speculative_decode(tiny.model, ids, draft, k, 40)
        assert len(run.tokens) == 40 and run.finish == "max_new_tokens"
        assert_same_greedy(run.tokens, plain.tokens, m, min_compared=min(len(plain.tokens), 10))
        if k == 0:
            assert run.proposed == 0 and run.forwards == 40  # no draft: plain greedy, one forward a token


def test_every_round_keeps_the_targets_choices(tiny):
    ids = tiny.tokenizer.encode("abcabcabcab")
    plain = greedy_decode(tiny.model, ids, 40)
    m = margins(tiny.model, tiny.config, ids, plain.tokens)
    for draft in tiny_drafts(tiny):
        rounds = list(speculative_decode(tiny.model, ids, draft, 4, 40))
        out = [t for r in rounds for t in r.emitted]
        n = m.first_near_tie
        for r in rounds:
            assert 0 <= r.accepted <= len(r.proposed) <= 4
            assert r.emitted == r.proposed[:r.accepted] + (r.target_token,)
            # the cache holds the confirmed text but its newest token: the rejected proposals' keys are gone
            assert r.cache_tokens == r.position + len(r.emitted) - 1
            i = r.position - len(ids)
            if i + len(r.emitted) <= n:
                # the first rejected proposal is where the draft disagreed with the target: never the target's token
                if r.rejected:
                    assert r.rejected[0] != plain.tokens[i + r.accepted]
                assert list(r.emitted) == list(plain.tokens[i:i + len(r.emitted)])
        assert [r.position for r in rounds] == list(itertools.accumulate([len(ids)] + [len(r.emitted) for r in
                                                                                      rounds[:-1]]))
        assert len(out) == 40


def test_a_draft_of_the_target_itself_is_always_accepted(tiny):
    ids = tiny.tokenizer.encode("hello hello hello world")
    plain = greedy_decode(tiny.model, ids, 36)
    m = margins(tiny.model, tiny.config, ids, plain.tokens)
    assert m.first_near_tie == len(plain.tokens), "choose a prompt without a near tie"
    for k in range(1, 7):
        run = run_speculative_decode(tiny.model, ids, ModelDraft(tiny.model), k, 36)
        assert run.acceptance_rate == 1.0
        # every round emits k + 1 tokens, but the last, which stops at the budget
        assert run.forwards == math.ceil(36 / (k + 1))


def test_stop_token_inside_accepted_draft_ends_where_greedy_ends(tiny):
    ids = tiny.tokenizer.encode("hello hello hello world")
    free = greedy_decode(tiny.model, ids, 36).tokens
    stop = free[9]
    plain = greedy_decode(tiny.model, ids, 36, [stop])
    assert plain.finish == "eos" and plain.tokens[-1] == stop
    for k in (1, 3, 6):
        run = run_speculative_decode(tiny.model, ids, ModelDraft(tiny.model), k, 36, [stop])
        assert run.tokens == plain.tokens and run.finish == "eos"


def test_full_context_ends_where_greedy_ends(tiny):
    cfg = tiny.model.cfg
    ids = (tiny.tokenizer.encode("abcabc") * cfg.max_seq_len)[:cfg.max_seq_len - 7]
    plain = greedy_decode(tiny.model, ids, 50)
    assert plain.finish == "context_full" and len(ids) + len(plain.tokens) == cfg.max_seq_len
    for draft in tiny_drafts(tiny):
        run = run_speculative_decode(tiny.model, ids, draft, 6, 50)
        assert run.finish == "context_full" and len(run.tokens) == len(plain.tokens)


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError):
        run_speculative_decode(tiny.model, [], PromptLookupDraft(), 3, 10)
    with pytest.raises(ValueError):
        run_speculative_decode(tiny.model, [1, 2], PromptLookupDraft(), 99, 10)
    with pytest.raises(ValueError):
        greedy_decode(tiny.model, [1] * tiny.model.cfg.max_seq_len, 10)


def test_vocabularies_match(tiny, smol):
    assert vocabularies_match(tiny.tokenizer, load_tiny("tiny-gpt").tokenizer, 256, 256) is None
    why = vocabularies_match(smol.tokenizer, tiny.tokenizer, smol.config.vocab_size, tiny.config.vocab_size)
    assert why is not None and "49,152" in str(why) and "256" in str(why)


# ---- identical output on SmolLM2 ---------------------------------------------------------------------------------

def _smol_ids(smol, text, chat):
    return smol.tokenizer.chat_ids(text) if chat else smol.tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("text,chat", SMOL_PROMPTS)
def test_speculative_equals_greedy_on_smollm2(smol, text, chat):
    ids = _smol_ids(smol, text, chat)
    n_new = 12
    plain = greedy_decode(smol.model, ids, n_new, smol.eos_token_ids)
    m = margins(smol.model, smol.config, ids, plain.tokens)
    drafts = [PromptLookupDraft(), ModelDraft(smol.model, 4, "early_exit")]
    # every k from 0 to 6 is run on the tiny model above; on SmolLM2 (seconds a run) the smallest, the largest and
    # two between
    for draft, k in itertools.product(drafts, (1, 2, 4, 6)):
        run = run_speculative_decode(smol.model, ids, draft, k, n_new, smol.eos_token_ids)
        assert_same_greedy(run.tokens, plain.tokens, m, min_compared=min(len(plain.tokens), 8))


def test_prompt_lookup_accepts_most_of_a_copy_task(smol):
    ids = _smol_ids(smol, *EXAMPLES["copy"])
    run = run_speculative_decode(smol.model, ids, PromptLookupDraft(), 4, 24, smol.eos_token_ids)
    # The answer copies the sentences back with a few words corrected: most rounds emit more than one token for
    # one target forward (every correction costs a round of rejected guesses).
    assert len(run.tokens) == 24 and run.tokens_per_forward > 1.5


def test_speculative_equals_transformers_assisted_generation(smol):
    """transformers' own prompt lookup decoding (its assisted generation, greedy) on its LlamaForCausalLM with the
    same weights: an independent implementation of the same method."""
    from tests.hf_reference import hf_causal_lm

    hf = hf_causal_lm(smol.source)
    for text, chat in SMOL_PROMPTS[:2]:
        ids = _smol_ids(smol, text, chat)
        x = torch.tensor([ids])
        with torch.inference_mode():
            out = hf.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=16,
                              prompt_lookup_num_tokens=4, eos_token_id=smol.eos_token_ids[0],
                              pad_token_id=smol.eos_token_ids[0], top_k=None, top_p=None, temperature=None)
        ref = out[0, len(ids):].tolist()
        run = run_speculative_decode(smol.model, ids, PromptLookupDraft(), 4, 16, smol.eos_token_ids)
        # Two implementations summing in different orders: equal up to the first near tie (tests/greedy.py).
        assert_same_greedy(run.tokens, ref, margins(hf, smol.config, ids, ref), min_compared=8)
