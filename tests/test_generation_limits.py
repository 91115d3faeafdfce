"""What one generation request may cost (issue 17 item 1), a long prompt read in chunks, and one run stepped or
closed from two threads at once (issue 17 item 2). Memory itself is measured by bench/bench_memory.py; these tests
check the caps and the structures that keep it bounded."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from explorer import limits
from explorer.config import ModelConfig
from explorer.generation import _forward_last, _LastRowContext, generate, prefill_chunks, prepare_prompt
from explorer.model import KVCache, Transformer
from explorer.sampling import MAX_NEW_TOKENS, SamplingSettings
from explorer.models.tiny import ByteTokenizer, load_tiny
from tests.pretrained_models import ours

CAP = limits.GENERATION_MAX_PROMPT_TOKENS


@pytest.fixture(scope="module")
def tiny():
    return load_tiny("tiny-llama")


# ---------------------------------------------------------------------------------------------------------------
# The caps.


def test_a_prompt_over_the_cap_is_refused_with_its_length():
    tok = ByteTokenizer()  # one byte, one token: the lengths below are exact
    assert len(prepare_prompt(tok, "x" * CAP, max_seq_len=10 * CAP)) == CAP
    with pytest.raises(ValueError) as err:
        prepare_prompt(tok, "x" * (CAP + 40), max_seq_len=10 * CAP)
    assert str(err.value) == limits.prompt_too_long(CAP + 40)
    assert f"{CAP + 40} tokens" in str(err.value) and f"at most {CAP}" in str(err.value)
    assert "about 40 tokens" in str(err.value)
    assert len(prepare_prompt(tok, "x" * (CAP + 40), max_seq_len=10 * CAP, max_prompt_tokens=None)) == CAP + 40


def test_generate_applies_the_cap_and_it_can_be_lifted(tiny):
    ids = [120] * (CAP + 1)
    with pytest.raises(ValueError, match=f"{CAP + 1} tokens long"):
        generate(tiny.model, tiny.tokenizer, ids, SamplingSettings(max_new_tokens=1))
    smol = ours("smollm2-135m")  # the tiny model's context (128 tokens) is shorter than the cap
    g = generate(smol.model, smol.tokenizer, ids, SamplingSettings(greedy=True, max_new_tokens=1),
                 max_prompt_tokens=None)
    assert len(list(g)) == 1 and g.steps[0].tokens_read == CAP + 1


def test_max_new_tokens_is_capped_by_the_library():
    assert MAX_NEW_TOKENS == limits.GENERATION_MAX_NEW_TOKENS
    assert SamplingSettings(max_new_tokens=MAX_NEW_TOKENS).max_new_tokens == MAX_NEW_TOKENS
    with pytest.raises(ValueError, match=f"from 1 to {MAX_NEW_TOKENS}"):
        SamplingSettings(max_new_tokens=MAX_NEW_TOKENS + 1)


def test_the_limits_note_states_every_cap():
    note = limits.prompt_limits_note()
    for number in (limits.GENERATION_MAX_PROMPT_TOKENS, limits.GENERATION_MAX_NEW_TOKENS):
        assert f"{number} " in note
    assert f"{limits.GENERATION_PROMPT_MAX_CHARS:,} characters" in note and "dropped" in note
    assert f"{limits.GENERATION_MAX_TOKENS_READ:,} tokens" in note


def test_without_the_cache_the_tokens_read_are_budgeted(tiny):
    assert limits.tokens_read(10, 4, use_cache=True) == 13
    assert limits.tokens_read(10, 4, use_cache=False) == 10 + 11 + 12 + 13
    for prompt in (1, 30, CAP):
        n = limits.max_new_without_cache(prompt)
        assert limits.tokens_read(prompt, n, use_cache=False) <= limits.GENERATION_MAX_TOKENS_READ
        assert limits.tokens_read(prompt, n + 1, use_cache=False) > limits.GENERATION_MAX_TOKENS_READ
        assert limits.no_cache_too_long(prompt, n) is None
        assert f"at most {n} new tokens" in limits.no_cache_too_long(prompt, n + 1)
    prompt = "x" * 100
    n = limits.max_new_without_cache(100)
    with pytest.raises(ValueError, match="Without the KV cache"):
        generate(tiny.model, tiny.tokenizer, prompt, SamplingSettings(max_new_tokens=n + 1), use_cache=False)
    generate(tiny.model, tiny.tokenizer, prompt, SamplingSettings(max_new_tokens=n + 1), use_cache=True)


# ---------------------------------------------------------------------------------------------------------------
# Chunked prefill: same numbers as one pass, never a (T, T) map.


def test_chunks_never_split_what_a_query_must_see():
    causal = ModelConfig(mask="causal")
    assert prefill_chunks(causal, 300, 128) == [128, 128, 44]
    assert prefill_chunks(causal, 100, 128) == [100]
    prefix = ModelConfig(mask="prefix", prefix_len=200)
    assert prefill_chunks(prefix, 300, 128) == [200, 100]  # the bidirectional prefix stays in one piece
    assert prefill_chunks(ModelConfig(mask="bidirectional"), 300, 128) == [300]
    window = ModelConfig(mask="sliding_window", window=5)
    assert sum(prefill_chunks(window, 301, 7)) == 301 and max(prefill_chunks(window, 301, 7)) == 7


def _one_pass(model: Transformer, ids: torch.Tensor):
    """The reference: the whole text in one forward without a cache, with every layer's full pattern."""
    names = [f"blocks.{i}.attn.pattern" for i in range(model.cfg.n_layer)]
    logits, cache = model.run_with_cache(ids.unsqueeze(0), names=names)
    return logits[0, -1], torch.stack([cache[n][0, :, -1, :] for n in names])  # (V,), (n_layer, n_head, T)


@pytest.mark.parametrize("overrides", [
    dict(positional="learned"),
    dict(positional="sinusoidal", norm_position="post"),
    dict(positional="alibi"),
    dict(positional="rope", norm="rmsnorm", activation="swiglu", n_kv_head=2),
    dict(mask="sliding_window", window=5),
    dict(mask="prefix", prefix_len=11),
])
@pytest.mark.parametrize("with_cache", [True, False])
def test_chunked_prefill_equals_one_pass_for_every_mask_and_position(overrides, with_cache):
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, max_seq_len=64, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Transformer(cfg).eval()
        ids = torch.randint(0, cfg.vocab_size, (37,))
    with torch.inference_mode():
        ref_logits, ref_rows = _one_pass(model, ids)
        cache = KVCache(cfg.n_layer) if with_cache else None
        logits, rows = _forward_last(model, ids, cache, True, chunk=4)
    # Two float32 layers of width 32 with O(1) values: the chunked pass only regroups the same sums (rounding
    # ~1e-7 each), so 1e-5 is far above any reordering and far below a masking mistake (O(0.1) changes).
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    # Rows are stored in float16: 2^-11 relative rounding, below rtol = 1e-3.
    torch.testing.assert_close(rows.float(), ref_rows, atol=1e-5, rtol=1e-3)
    if with_cache:
        assert cache.length == ids.shape[0]


@pytest.mark.parametrize("n_tokens,chunk", [(300, limits.PREFILL_CHUNK_TOKENS), (40, 7)])
def test_chunked_prefill_equals_one_pass_on_smollm2(n_tokens, chunk):
    pm = ours("smollm2-135m")
    text = "The Great Wall of China was built over many centuries by several dynasties. " * 40
    ids = torch.tensor(pm.tokenizer.encode(text, add_special_tokens=False)[:n_tokens])
    with torch.inference_mode():
        ref_logits, ref_rows = _one_pass(pm.model, ids)
        logits, rows = _forward_last(pm.model, ids, KVCache(pm.config.n_layer), True, chunk=chunk)
    # float32 through 30 layers, logits up to ~20 in magnitude: regrouping the matmuls by chunk moved them by at
    # most 3.4e-5 on the dev machine, the decode layout by 4.4e-5 on an AVX-512 one (issue 9). 5e-4 is ten times
    # that, 2.5e-5 of the largest logit, and still 100x below the gap a masking or position mistake opens.
    torch.testing.assert_close(logits, ref_logits, atol=5e-4, rtol=0)
    # float16 storage (2^-11 relative) plus the same float32 drift passed through a softmax.
    torch.testing.assert_close(rows.float(), ref_rows, atol=1e-5, rtol=1e-3)


def test_the_attention_row_kept_during_a_forward_is_a_small_copy():
    # A view of pattern[0, :, -1, :] keeps the whole (n_head, T, S) pattern alive until the forward ends: 30 layers
    # of them were 4 GB for a 1,950-token prompt.
    ctx = _LastRowContext(record=True)
    pattern = torch.rand(1, 9, 300, 300)
    assert ctx("blocks.0.attn.pattern", pattern) is pattern
    row = ctx.rows[0]
    assert row.untyped_storage().nbytes() == 9 * 300 * row.element_size()
    torch.testing.assert_close(row.float(), pattern[0, :, -1, :], atol=0, rtol=2 ** -11)  # float16 rounding


def test_steps_keep_float16_rows_and_give_float32(tiny):
    g = generate(tiny.model, tiny.tokenizer, "hello world", SamplingSettings(greedy=True, max_new_tokens=3),
                 attention=True)
    for step in g:
        assert step.attention_rows.dtype == np.float16
        assert step.attention.shape == (tiny.config.n_layer, tiny.config.n_head, step.position)
        assert step.attention.dtype == np.float32


# ---------------------------------------------------------------------------------------------------------------
# One run, two threads: the script run Streamlit superseded may still be inside a step.


class GatedTokenizer:
    """The tiny model's tokenizer, except that decode() (called inside every step) can be held at a gate, so a
    test knows a step is being computed in another thread."""

    def __init__(self, inner):
        self._inner = inner
        self.armed = False
        self.inside = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def decode(self, ids, **kw):
        if self.armed:
            self.inside.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return self._inner.decode(ids, **kw)


def _gated_run(tiny):
    tok = GatedTokenizer(tiny.tokenizer)
    g = generate(tiny.model, tok, "hello", SamplingSettings(greedy=True, max_new_tokens=50))
    next(g)
    tok.armed = True
    return g, tok


def _in_thread(fn):
    out: list = []
    errors: list = []

    def target():
        try:
            out.append(fn())
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    t = threading.Thread(target=target)
    t.start()
    return t, out, errors


def test_close_while_another_thread_computes_a_step(tiny):
    g, tok = _gated_run(tiny)
    t, out, errors = _in_thread(lambda: next(g))
    assert tok.inside.wait(30)
    g.close()  # was: ValueError: generator already executing
    tok.gate.set()
    t.join(30)
    assert not errors and len(out) == 1 and out[0].index == 1  # the step in progress finishes and is kept
    assert g.closed and len(g.steps) == 2
    assert list(g) == []  # and nothing comes after it


def test_two_threads_stepping_one_run_take_turns(tiny):
    g, tok = _gated_run(tiny)
    first, out_a, err_a = _in_thread(lambda: next(g))
    assert tok.inside.wait(30)
    second, out_b, err_b = _in_thread(lambda: next(g))
    assert not g.settle(timeout=0.2)  # a step is still being computed
    tok.gate.set()
    first.join(30)
    second.join(30)
    assert not err_a and not err_b
    assert sorted(s.index for s in out_a + out_b) == [1, 2]
    assert [s.index for s in g.steps] == [0, 1, 2] and g.settle(timeout=1)
