"""Reusing the keys and values of prompts' shared beginnings (explorer.prefix_cache, the engine's prefix reuse):
the store keeps and finds the right prompt, a class sharing a chat template reads it once, and every answer is the
one its prompt gets alone, here and in transformers.

Tolerances: as tests/test_engine.py, whose helpers are used. A copied beginning holds the keys and values another
forward computed for the same tokens at the same positions, summed in another grouping (a pack of other prompts
beside it): the same "same network, sums in another order" drift, so greedy ids are compared up to a near tie."""
from __future__ import annotations

import pytest
import torch

from explorer import priority
from explorer.config import ModelConfig
from explorer.engine import engine_for, engine_stats, reuses_prefixes, weights_version
from explorer.generation import chat_template_prefix, generate, pin_chat_template, prepare_prompt
from explorer.model import SlotKVCache, Transformer
from explorer.models.tiny import load_tiny
from explorer.prefix_cache import PrefixStore, common_prefix
from explorer.sampling import SamplingSettings
from tests.greedy import assert_same_greedy, margins
from tests.test_engine import assert_like_solo, interleave


def kv(n: int, fill: float = 0.0, layers: int = 2) -> torch.Tensor:
    return torch.full((2, layers, 1, n, 4), fill)


# ---- the store ----------------------------------------------------------------------------------------------------

def test_common_prefix_counts_the_shared_first_tokens():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([1, 2, 3], [1, 2, 3, 4], most=2) == 2
    assert common_prefix([], [1]) == 0 and common_prefix([5], [6]) == 0


def test_the_store_finds_the_longest_shared_beginning_above_its_minimum():
    store = PrefixStore(min_tokens=3)
    store.add([1, 2, 3, 4, 5], kv(5, 1.0))
    store.add([1, 2, 3, 9, 9, 9], kv(6, 2.0))
    entry, n = store.match([1, 2, 3, 9, 9, 7], most=5)
    assert n == 5 and entry.ids == (1, 2, 3, 9, 9, 9)
    entry, n = store.match([1, 2, 3, 4, 5, 6], most=5)
    assert n == 5 and entry.ids == (1, 2, 3, 4, 5)
    assert store.match([1, 2, 3, 4, 5, 6], most=2) == (None, 0)  # fewer than min_tokens: read them again
    assert store.match([7, 2, 3], most=2) == (None, 0)


def test_a_prompt_that_extends_a_stored_one_replaces_it_and_one_already_covered_is_not_kept_twice():
    store = PrefixStore(min_tokens=1)
    store.add([1, 2, 3], kv(3))
    store.add([1, 2, 3, 4, 5], kv(5))
    assert len(store) == 1 and store.nbytes == kv(5).numel() * 4
    store.add([1, 2], kv(2))
    store.add([1, 2, 3, 4, 5], kv(5))
    assert len(store) == 1 and store.match([1, 2, 3, 4, 5, 6], 9)[1] == 5
    assert store.covers([1, 2]) and store.covers([1, 2, 3, 4, 5])
    assert not store.covers([1, 2, 3, 4, 5, 6]) and not store.covers([2, 3])
    with pytest.raises(ValueError):
        store.add([1, 2, 3], kv(2))


def test_the_least_recently_used_prompt_goes_first_when_the_bytes_run_out():
    one = kv(4).numel() * 4
    store = PrefixStore(max_bytes=2 * one, min_tokens=1)
    store.add([1, 1, 1, 1], kv(4))
    store.add([2, 2, 2, 2], kv(4))
    store.match([1, 1, 1, 1, 0], 4)  # the first is used again: the second is now the oldest
    store.add([3, 3, 3, 3], kv(4))
    assert len(store) == 2 and store.nbytes == 2 * one
    assert store.match([2, 2, 2, 2], 4) == (None, 0)
    assert store.match([1, 1, 1, 1], 4)[1] == 4 and store.match([3, 3, 3, 3], 4)[1] == 4
    store.add([4] * 9, kv(9))  # larger than the whole store: not kept, nothing dropped for it
    assert len(store) == 2
    store.clear()
    assert len(store) == 0 and store.nbytes == 0


def test_a_pinned_prompt_stays_through_clears_and_evictions_until_its_weights_change():
    one = kv(4).numel() * 4
    store = PrefixStore(max_bytes=2 * one, min_tokens=1)
    store.pin([9, 9, 9, 9], kv(4))
    store.add([9, 9, 9, 9, 1], kv(5))  # continues the pinned one: both kept, the pinned one is not replaced
    store.add([2, 2, 2, 2], kv(4))
    store.add([3, 3, 3, 3], kv(4))  # over the bytes: the oldest unpinned ones go, never the pinned one
    assert store.match([9, 9, 9, 9, 7], 5)[1] == 4 and store.match([3, 3, 3, 3], 4)[1] == 4
    assert store.match([2, 2, 2, 2], 4) == (None, 0)
    store.clear()
    assert len(store) == 1 and store.match([9, 9, 9, 9, 7], 5)[1] == 4 and store.nbytes == one
    store.clear(pinned=True)
    assert len(store) == 0 and store.nbytes == 0


def test_a_snapshot_copied_into_another_row_gives_the_same_next_logits():
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=2, vocab_size=50, max_seq_len=64,
                      positional="rope", norm="rmsnorm", activation="swiglu")
    model = Transformer.from_seed(cfg, 0).eval()
    ids = torch.randint(0, cfg.vocab_size, (20,), generator=torch.Generator().manual_seed(2))
    cache = SlotKVCache(cfg, slots=3, capacity=32)
    with torch.inference_mode():
        model(ids[None, :12], kv_cache=cache.rows(0, 1), head=False)
        cache.lengths[0] = 12
        snap = cache.snapshot(0, 12)
        assert snap.shape == (2, cfg.n_layer, cfg.n_kv_head, 12, cfg.d_head)
        cache.copy_in(2, snap, 9)  # a prompt sharing the first 9 tokens reads from the 10th
        assert cache.lengths[2] == 9
        after_copy = model(ids[None, 9:12], kv_cache=cache.rows(2, 3))[0, -1]
        alone = model(ids[None, :12])[0, -1]
    # Two layers of width 32, values O(1): the same sums in another grouping differ by ~1e-7; a key at a wrong
    # position or a missing one moves the logits by O(0.1).
    torch.testing.assert_close(after_copy, alone, atol=1e-5, rtol=1e-5)


# ---- when the engine reuses ---------------------------------------------------------------------------------------

def test_only_frozen_causal_models_reuse_and_the_setting_turns_it_off(monkeypatch):
    pm = load_tiny("tiny-llama")
    assert reuses_prefixes(pm.model)
    monkeypatch.setenv("EXPLORER_PREFIX_CACHE", "0")
    assert not reuses_prefixes(pm.model)
    monkeypatch.delenv("EXPLORER_PREFIX_CACHE")
    training = Transformer.from_seed(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=20, max_seq_len=16), 0)
    assert not reuses_prefixes(training)  # its weights require grad: they may change between two requests
    prefix_lm = Transformer.from_seed(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=20, max_seq_len=16,
                                                  mask="prefix", prefix_len=4), 0).requires_grad_(False)
    assert not reuses_prefixes(prefix_lm)  # its first tokens' keys depend on the tokens after them


def test_weights_written_in_place_are_never_answered_from_old_keys():
    pm = load_tiny("tiny-llama")
    s = SamplingSettings(greedy=True, max_new_tokens=6)
    prompt = "the same long beginning, asked twice"
    list(generate(pm.model, pm.tokenizer, prompt, s))
    before = weights_version(pm.model)
    with torch.no_grad():
        next(pm.model.parameters()).mul_(1.5)
    assert weights_version(pm.model) != before
    steps = list(generate(pm.model, pm.tokenizer, prompt, s))
    assert engine_stats(pm.model)["prefix_hits"] == 0  # the store was emptied, not read
    assert_like_solo(pm, prompt, s, steps)


def test_a_pinned_beginning_is_copied_by_the_first_prompt_that_has_it():
    pm = load_tiny("tiny-llama")
    engine = engine_for(pm.model)
    header = prepare_prompt(pm.tokenizer, HEADER, pm.config.max_seq_len).ids
    assert engine.pin_prefix(header)
    s = SamplingSettings(greedy=True, max_new_tokens=6)
    steps = list(generate(pm.model, pm.tokenizer, HEADER + "why is the sky blue?", s))
    stats = engine_stats(pm.model)
    assert stats["prefix_hits"] == 1 and stats["prefix_tokens"] == len(header)
    assert_like_solo(pm, HEADER + "why is the sky blue?", s, steps)
    assert not engine.pin_prefix([])  # nothing to keep


# ---- a class at once ----------------------------------------------------------------------------------------------

HEADER = "Teacher: answer in one short sentence, please. Student: "  # 56 bytes: 57 tokens with BOS


def test_a_class_sharing_a_beginning_reads_it_once_and_each_answer_is_its_own(monkeypatch):
    """Nine students press Generate at once: the first reads the shared header, the others wait one step and copy
    it; three ask the same question, and those copy all of it but its last token. The tiny model's tokenizer is
    byte-level, so the tokens read are counted exactly."""
    pm = load_tiny("tiny-llama")
    engine = engine_for(pm.model)
    monkeypatch.setattr(engine, "max_batch", 16)
    # The new questions begin with distinct bytes, so they share exactly the header with any earlier prompt.
    tails = ["why is the sky blue?", "add 7 and 8.", "name a red fruit.", "why is the sky blue?", "how do bees fly?",
             "why is the sky blue?", "count to five.", "list two nouns.", "spell cat."]
    prompts = [HEADER + t for t in tails]
    settings = [SamplingSettings(greedy=i % 2 == 0, temperature=0.9, max_new_tokens=6, seed=i) for i in range(9)]
    copied = []  # the prompts whose keys and values the engine copied out for the store
    snapshot = SlotKVCache.snapshot
    monkeypatch.setattr(SlotKVCache, "snapshot", lambda self, row, n: copied.append(n) or snapshot(self, row, n))
    with priority.interactive():  # all nine are in line before the engine's next step
        runs = [generate(pm.model, pm.tokenizer, p, s) for p, s in zip(prompts, settings)]
        for r in runs:
            r.place()
    out = interleave(runs)
    for p, s, steps in zip(prompts, settings, out):
        assert_like_solo(pm, p, s, steps)
    ids = [prepare_prompt(pm.tokenizer, p, pm.config.max_seq_len).ids for p in prompts]
    # Each reads what no earlier prompt holds, and at least its last token: everything for the first, the
    # question for a new one, one token for a repeated one.
    unread = [len(ids[0])] + [len(a) - min(max(common_prefix(a, b) for b in ids[:i]), len(a) - 1)
                              for i, a in enumerate(ids) if i]
    assert unread[3] == unread[5] == 1 and unread[1] == len(tails[1].encode())  # (byte-level tokens, no BOS)
    stats = engine_stats(pm.model)
    assert stats["prefix_hits"] == len(prompts) - 1
    assert stats["prefill_tokens"] == sum(unread)
    assert stats["prefill_tokens"] < sum(map(len, ids)) / 3
    assert sorted(copied) == sorted(len(a) for a in {tuple(a) for a in ids})  # a question asked again: no copy


@pytest.mark.slow
def test_smollm2_chat_prompts_sharing_the_template_equal_transformers_generate():
    """Chat prompts share SmolLM2's system prompt and header: read at once, the later ones start from the earlier
    ones' keys (the template's for a new question, all but the last token for a repeated one), and each greedy
    answer is transformers' own for its prompt."""
    from tests.hf_reference import hf_causal_lm, hf_greedy
    from tests.pretrained_models import ours

    smol = ours("smollm2-135m")
    hf = hf_causal_lm(smol.source)
    questions = ["What is the capital of France?", "Name three colors.", "What is the capital of France?"]
    engine_for(smol.model).clear_prefixes()  # another test's prompts may hold the template already
    before = engine_stats(smol.model)
    greedy = SamplingSettings(greedy=True, max_new_tokens=8)
    with priority.interactive():
        runs = [generate(smol.model, smol.tokenizer, q, greedy, chat=True, stop_ids=smol.eos_token_ids)
                for q in questions]
        for r in runs:
            r.place()
    out = interleave(runs)
    ids = [prepare_prompt(smol.tokenizer, q, smol.config.max_seq_len, chat=True).ids for q in questions]
    for prompt, steps in zip(ids, out):
        want = hf_greedy(hf, list(prompt), 8, smol.tokenizer.eos_token_id)
        assert_same_greedy([s.token_id for s in steps], want, margins(hf, smol.config, prompt, want), min_compared=4)
    stats = engine_stats(smol.model)
    template = common_prefix(ids[0], ids[1])
    assert template >= 20  # the system prompt and the user's header
    assert stats["prefix_hits"] - before["prefix_hits"] == 2
    assert stats["prefix_tokens"] - before["prefix_tokens"] == template + len(ids[2]) - 1


@pytest.mark.slow
def test_smollm2_keeps_its_chat_template_s_system_prompt_and_every_chat_prompt_starts_from_it():
    """What the app and the engine process pin when SmolLM2 loads: the template's text up to the user's words (as
    transformers writes the template), copied by a chat prompt that arrives alone; its answer is transformers'."""
    from tests.hf_reference import hf_causal_lm, hf_greedy
    from tests.pretrained_models import ours

    smol = ours("smollm2-135m")
    template = chat_template_prefix(smol.tokenizer)
    with smol.tokenizer.locked() as raw:
        text = raw.apply_chat_template([{"role": "user", "content": "Why is the sky blue?"}], tokenize=False,
                                       add_generation_prompt=True)
    head = smol.tokenizer.decode(template)
    assert text.startswith(head) and text[len(head):].startswith("Why is the sky blue?") and len(template) >= 20
    engine = engine_for(smol.model)
    engine.clear_prefixes()
    assert pin_chat_template(smol.model, smol.tokenizer) == len(template)
    before = engine_stats(smol.model)
    greedy = SamplingSettings(greedy=True, max_new_tokens=8)
    steps = list(generate(smol.model, smol.tokenizer, "Why is the sky blue?", greedy, chat=True,
                          stop_ids=smol.eos_token_ids))
    stats = engine_stats(smol.model)
    assert stats["prefix_hits"] - before["prefix_hits"] == 1
    assert stats["prefix_tokens"] - before["prefix_tokens"] == len(template)
    hf = hf_causal_lm(smol.source)
    prompt = prepare_prompt(smol.tokenizer, "Why is the sky blue?", smol.config.max_seq_len, chat=True).ids
    want = hf_greedy(hf, list(prompt), 8, smol.tokenizer.eos_token_id)
    assert_same_greedy([s.token_id for s in steps], want, margins(hf, smol.config, prompt, want), min_compared=4)
    engine.clear_prefixes()  # the other tests count from an empty store
