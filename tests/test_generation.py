"""explorer.generation and explorer.sampling against transformers: the logit processors, greedy and seeded sampling
on SmolLM2's real weights, the KV cache, the attention rows, stopping, validation and concurrent runs."""
from __future__ import annotations

import itertools
import math
import threading

import pytest
import torch
from transformers import (LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                          TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from explorer.generation import generate, prepare_prompt, replay_speed
from explorer.model import decode_layout_
from explorer.sampling import (SamplingSettings, apply_min_p, apply_repetition_penalty, apply_temperature,
                               apply_top_k, apply_top_p, entropy_bits)
from explorer.models.tiny import ByteTokenizer, load_tiny
from explorer.models.token_labels import part_label, sequence_labels
from tests.greedy import COUNTING_ANSWER, COUNTING_PROMPT, assert_no_near_tie, assert_same_greedy, margins
from tests.hf_reference import hf_causal_lm, hf_greedy
from tests.numerics import assert_rows_close, logit_drift, pattern_scale, probs_close, reordered, widest_sum
from tests.pretrained_models import ours

PROMPTS = [  # (text, chat mode)
    ("What is the capital of France?", True),
    ("The cat sat on the", False),
    ("今天天气", False),
]


@pytest.fixture(scope="module")
def smol():
    """SmolLM2 as the app serves it (decode layout): generation is what that layout is for."""
    return ours("smollm2-135m")


@pytest.fixture(scope="module")
def hf(smol):
    return hf_causal_lm(smol.source)


@pytest.fixture(scope="module")
def tiny():
    return load_tiny("tiny-llama")


def run(pm, prompt, settings, **kw):
    g = generate(pm.model, pm.tokenizer, prompt, settings, stop_ids=pm.eos_token_ids, **kw)
    steps = list(g)
    return g, steps


# ---------------------------------------------------------------------------------------------------------------
# Logit processors, exactly as transformers computes them.


def _logits(seed: int, batch: int = 4, vocab: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=g) * 3
    logits[0, :7] = logits[0, 7]  # ties at the top-k boundary are a corner case worth pinning
    return logits


@pytest.mark.parametrize("k", [1, 5, 8, 50, 499, 500, 10_000])
def test_top_k_matches_transformers(k):
    for seed in range(3):
        x = _logits(seed)
        assert torch.equal(apply_top_k(x, k), TopKLogitsWarper(k)(None, x.clone()))


@pytest.mark.parametrize("p", [0.01, 0.3, 0.5, 0.9, 0.95, 0.999])
def test_top_p_matches_transformers(p):
    for seed in range(3):
        x = _logits(seed)
        assert torch.equal(apply_top_p(x, p), TopPLogitsWarper(p)(None, x.clone()))


@pytest.mark.parametrize("min_p", [0.01, 0.05, 0.2, 0.9])
def test_min_p_matches_transformers(min_p):
    for seed in range(3):
        x = _logits(seed)
        assert torch.equal(apply_min_p(x, min_p), MinPLogitsWarper(min_p)(None, x.clone()))


@pytest.mark.parametrize("penalty", [0.5, 1.2, 2.0])
def test_repetition_penalty_matches_transformers(penalty):
    x = _logits(0)
    context = torch.randint(0, 500, (4, 30), generator=torch.Generator().manual_seed(1))
    assert torch.equal(apply_repetition_penalty(x, context, penalty),
                       RepetitionPenaltyLogitsProcessor(penalty)(context, x.clone()))


@pytest.mark.parametrize("t", [0.1, 0.7, 1.5])
def test_temperature_matches_transformers(t):
    x = _logits(0)
    assert torch.equal(apply_temperature(x, t), TemperatureLogitsWarper(t)(None, x.clone()))


@pytest.mark.parametrize("settings", [
    dict(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.3),
    dict(temperature=1.5, top_k=0, top_p=0.5, min_p=0.0, repetition_penalty=1.0),
    dict(temperature=0.3, top_k=3, top_p=1.0, min_p=0.3, repetition_penalty=0.8),
])
def test_processing_chain_matches_transformers_order(settings):
    s = SamplingSettings(**settings)
    hf_chain = LogitsProcessorList(
        ([RepetitionPenaltyLogitsProcessor(s.repetition_penalty)] if s.repetition_penalty != 1 else [])
        + [TemperatureLogitsWarper(s.temperature)]
        + ([TopKLogitsWarper(s.top_k)] if s.top_k else [])
        + ([TopPLogitsWarper(s.top_p)] if s.top_p < 1 else [])
        + ([MinPLogitsWarper(s.min_p)] if s.min_p else [])
    )
    context = torch.randint(0, 500, (1, 20), generator=torch.Generator().manual_seed(3))
    for seed in range(3):
        x = _logits(seed, batch=1)
        assert torch.equal(s.process(x[0], context[0]), hf_chain(context, x.clone())[0])


def _entropy_reference(probs: torch.Tensor) -> torch.Tensor:
    """-sum p log2 p in float64, written out (0 log 0 = 0)."""
    p = probs.double()
    return -(p * torch.log2(p.clamp_min(1e-300))).sum(-1)


def test_entropy_in_bits():
    probs = torch.softmax(_logits(0), dim=-1)
    torch.testing.assert_close(entropy_bits(probs).double(), _entropy_reference(probs))
    assert entropy_bits(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# On SmolLM2's real weights, against LlamaForCausalLM.


@pytest.mark.parametrize("prompt,chat", PROMPTS)
def test_greedy_equals_transformers_generate(smol, hf, prompt, chat):
    g, steps = run(smol, prompt, SamplingSettings(greedy=True, max_new_tokens=14), chat=chat)
    ref = hf_greedy(hf, list(g.prompt.ids), 14, smol.tokenizer.eos_token_id)
    # Ours (decode layout, one row per step) and transformers sum in different orders: equal up to a near tie.
    compared = assert_same_greedy([s.token_id for s in steps], ref, margins(hf, smol.config, g.prompt.ids, ref),
                                  min_compared=6)
    if compared == len(ref):
        assert g.text == smol.tokenizer.decode(ref, skip_special_tokens=True)


def test_counting_prompt_runs_to_the_limit(smol):
    """The browser's Stop test relies on this run lasting all 256 tokens with a known text on every CPU."""
    g, steps = run(smol, COUNTING_PROMPT, SamplingSettings(greedy=True, max_new_tokens=256))
    assert len(steps) == 256 and steps[-1].finish == "max_new_tokens"
    assert_no_near_tie(margins(smol.model, smol.config, g.prompt.ids, g.token_ids))
    assert g.text.strip() == COUNTING_ANSWER


def test_chat_answer_stops_on_eos(smol):
    g, steps = run(smol, "What is the capital of France?", SamplingSettings(greedy=True, max_new_tokens=40),
                   chat=True)
    assert_no_near_tie(margins(smol.model, smol.config, g.prompt.ids, g.token_ids))  # the same answer on any CPU
    assert steps[-1].finish == "eos" and steps[-1].token_id in smol.eos_token_ids
    assert len(steps) < 40 and "Paris" in g.text
    assert "<|im_end|>" not in g.text  # the end token is a step, not part of the text


@pytest.mark.parametrize("prompt,settings", [
    ("Once upon a time", dict(temperature=1.3, top_k=40, top_p=0.9, min_p=0.02, repetition_penalty=1.3, seed=7)),
    ("The best food is", dict(temperature=0.9, top_k=0, seed=123)),
])
def test_seeded_sampling_equals_transformers_sampling(smol, hf, prompt, settings):
    # transformers draws with torch.multinomial from the global generator; ours uses a private generator seeded
    # the same way, so the same seed must give the same tokens.
    s = SamplingSettings(max_new_tokens=12, **settings)
    g, steps = run(smol, prompt, s)
    ids = torch.tensor([list(g.prompt.ids)])
    torch.manual_seed(s.seed)
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=12,
                          temperature=s.temperature, top_k=s.top_k or None, top_p=s.top_p, min_p=s.min_p or None,
                          repetition_penalty=s.repetition_penalty, eos_token_id=2, pad_token_id=2)
    assert [st.token_id for st in steps] == out[0, ids.shape[1]:].tolist()


def test_step_probabilities_match_transformers_logits(smol, hf):
    s = SamplingSettings(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=3, seed=0)
    g, steps = run(smol, "The capital of Italy is", s)
    for step in steps:
        context = torch.tensor([list(g.prompt.ids) + [x.token_id for x in steps[:step.index]]])
        with torch.inference_mode():
            logits = hf(context).logits[0, -1]
        # Ours (decode layout, KV cache) and transformers' full forward sum in other orders: logits apart by up
        # to `drift`, so each probability by the factor probs_close allows.
        drift = logit_drift(logits, smol.config).item()
        model_probs = torch.softmax(logits, -1)
        chain = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.9)])
        probs = torch.softmax(chain(context, logits[None].clone())[0], -1)
        for c in step.candidates:
            assert probs_close(c.model_prob, model_probs[c.token_id].item(), drift), c
            assert probs_close(c.prob, probs[c.token_id].item(), drift, temperature=0.7), c  # softmax over the kept
        assert step.n_kept == int((probs > 0).sum())
        # H = -Σ p log2 p; with every log p moved by at most 2δ and every p by the factor e^{±2δ}, H moves by at
        # most 2δ·(H + 2/ln 2) to first order.
        h = _entropy_reference(model_probs).item()
        assert step.model_entropy == pytest.approx(h, abs=2 * drift * (h + 2 / math.log(2)) + 1e-6)
        kept = [c for c in step.candidates if c.prob > 0]
        assert [c.prob for c in kept] == sorted((c.prob for c in kept), reverse=True)
        assert step.token_id in [c.token_id for c in step.candidates]


def test_attention_rows_match_transformers(smol, hf):
    g, steps = run(smol, "The cat sat on the", SamplingSettings(greedy=True, max_new_tokens=3), attention=True)
    full = torch.tensor([list(g.prompt.ids) + [s.token_id for s in steps]])
    with torch.inference_mode():
        ref = hf(full, output_attentions=True).attentions  # per layer (1, nh, T, T)
    # Each row's tolerance scales with the scores it was softmaxed from (tests/numerics.py pattern_scale), read
    # from the row-major model; ours sums in another order (decode layout, KV cache) through up to 30 layers.
    _, cache = ours("smollm2-135m", layout="row").model.run_with_cache(
        full, names=lambda n: n.endswith(("attn.scores", "attn.pattern")))
    n_layer, k = smol.config.n_layer, widest_sum(smol.config)
    for step in steps:
        q = step.position - 1  # the query whose attention picked this step's token
        expected = torch.stack([a[0, :, q, :q + 1] for a in ref])  # (n_layer, nh, context)
        assert step.attention.shape == (n_layer, 9, step.position)
        scale = torch.stack([pattern_scale(cache[f"blocks.{i}.attn.scores"], cache[f"blocks.{i}.attn.pattern"])
                             [0, :, q] for i in range(n_layer)])  # (n_layer, nh, 1)
        # A step may keep its rows in float16 (rounding 2^-11 of values <= 1), on top of the drift.
        assert_rows_close(torch.from_numpy(step.attention), expected, reordered(n_layer, k), f"attention of step {step.index}",
                          scale=scale, extra=2.0 ** -11)
        assert len(g.context_labels(step)) == step.position


def test_streamed_text_is_the_decoded_text_even_mid_character(smol):
    # Chinese characters are several byte-level tokens: the stream holds a partial character back.
    g, steps = run(smol, "请用中文介绍一下长城。", SamplingSettings(greedy=True, max_new_tokens=12), chat=True)
    ids = [s.token_id for s in steps if s.token_id not in smol.eos_token_ids]
    assert "".join(s.delta for s in steps) == smol.tokenizer.decode(ids, skip_special_tokens=True)
    assert all("\ufffd" not in s.delta for s in steps[:-1])


@pytest.mark.parametrize("greedy", [True, False])
def test_kv_cache_on_equals_off(smol, greedy):
    s = SamplingSettings(greedy=greedy, temperature=1.0, top_k=0, max_new_tokens=10, seed=3)
    g, on = run(smol, "A short story about a robot:", s, use_cache=True)
    _, off = run(smol, "A short story about a robot:", s, use_cache=False)
    # One row at a time against the whole text: the same sums in another order. Greedy: equal up to a near tie
    # (this prompt has one at step 9). Sampling: the same seed draws the same uniform numbers, and a token can
    # only change where a draw falls within ~1e-5 (the probabilities' drift) of a boundary of the cumulative
    # distribution: about one chance in 10^4 over these 10 steps, for a given CPU.
    off_ids = [b.token_id for b in off]
    m = margins(smol.model, smol.config, g.prompt.ids, off_ids)
    if greedy:
        compared = assert_same_greedy([a.token_id for a in on], off_ids, m, min_compared=5)
    else:
        compared = len(off_ids)
        assert [a.token_id for a in on] == off_ids
    drift = logit_drift(m.logits, smol.config)
    for a, b, d in list(zip(on, off, drift.tolist()))[:compared]:
        assert probs_close(a.prob, b.prob, d), (a.index, a.prob, b.prob)
    n_prompt = on[0].tokens_read
    assert [a.tokens_read for a in on] == [n_prompt] + [1] * 9
    assert [b.tokens_read for b in off] == [n_prompt + i for i in range(10)]


def test_concurrent_generations_do_not_interfere(smol, tiny):
    jobs = [
        (smol, "Tell me about cats.", SamplingSettings(temperature=1.2, max_new_tokens=8, seed=1)),
        (smol, "Tell me about cats.", SamplingSettings(temperature=1.2, max_new_tokens=8, seed=2)),
        (smol, "Numbers: 1, 2, 3,", SamplingSettings(greedy=True, max_new_tokens=8)),
        (tiny, "hello", SamplingSettings(temperature=1.0, max_new_tokens=30, seed=5)),
        (tiny, "hello", SamplingSettings(temperature=1.0, max_new_tokens=30, seed=6, top_p=0.5)),
    ]
    alone = [[s.token_id for s in run(pm, p, s)[1]] for pm, p, s in jobs]
    together: list[list[int] | None] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(i):
        pm, p, s = jobs[i]
        g = generate(pm.model, pm.tokenizer, p, s, stop_ids=pm.eos_token_ids)
        barrier.wait()
        together[i] = [step.token_id for step in g]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Cross-talk would change whole sequences. Runs in parallel may split their matrix products over threads
    # differently from runs alone, so the greedy job is compared up to a near tie (the sampled ones: see
    # test_kv_cache_on_equals_off for why an exact comparison holds).
    greedy_job = 2
    pm, p, _ = jobs[greedy_job]
    prompt_ids = prepare_prompt(pm.tokenizer, p, pm.config.max_seq_len).ids
    assert_same_greedy(together[greedy_job], alone[greedy_job],
                       margins(pm.model, pm.config, prompt_ids, alone[greedy_job]), min_compared=8)
    others = [i for i in range(len(jobs)) if i != greedy_job]
    assert [together[i] for i in others] == [alone[i] for i in others]
    assert alone[0] != alone[1]  # different seeds really do sample differently


# ---------------------------------------------------------------------------------------------------------------
# Stopping, repeatability, validation (the tiny random model is enough).


def test_same_seed_same_text_other_seed_other_text(tiny):
    s = SamplingSettings(temperature=1.0, max_new_tokens=20, seed=42)
    a = [x.token_id for x in run(tiny, "abc", s)[1]]
    b = [x.token_id for x in run(tiny, "abc", s)[1]]
    c = [x.token_id for x in run(tiny, "abc", SamplingSettings(temperature=1.0, max_new_tokens=20, seed=43))[1]]
    assert a == b and a != c


def test_no_seed_draws_one_and_records_it(tiny):
    g1 = generate(tiny.model, tiny.tokenizer, "abc", SamplingSettings(seed=None, max_new_tokens=12))
    first = [s.token_id for s in g1]
    assert g1.settings.seed is not None
    again = [s.token_id for s in generate(tiny.model, tiny.tokenizer, "abc", g1.settings)]
    assert again == first


def test_sampling_never_picks_a_filtered_token(tiny):
    g, steps = run(tiny, "xyz", SamplingSettings(temperature=2.0, top_k=3, max_new_tokens=40, seed=0))
    for s in steps:
        assert s.prob > 0 and s.n_kept <= 3 + 2  # ties at the boundary may keep a few more
        assert sum(c.prob for c in s.candidates) == pytest.approx(1.0, abs=1e-5)


def test_stops_at_max_tokens_and_when_context_is_full(tiny):
    _, steps = run(tiny, "hello", SamplingSettings(max_new_tokens=7))
    assert len(steps) == 7 and steps[-1].finish == "max_new_tokens"
    assert all(s.finish is None for s in steps[:-1])
    n_ctx = tiny.config.max_seq_len
    _, steps = run(tiny, "x" * (n_ctx - 5), SamplingSettings(max_new_tokens=50))
    assert len(steps) == 5 and steps[-1].finish == "context_full"
    assert steps[-1].position == n_ctx - 1


def test_stops_when_the_caller_stops(tiny):
    g = generate(tiny.model, tiny.tokenizer, "hello", SamplingSettings(max_new_tokens=100))
    taken = list(itertools.islice(g, 3))
    g.close()
    assert len(taken) == 3 and len(g.steps) == 3
    assert list(g) == []


def test_stop_ids_end_generation(tiny):
    _, free = run(tiny, "hello", SamplingSettings(greedy=True, max_new_tokens=10))
    stop = free[4].token_id
    first = next(i for i, s in enumerate(free) if s.token_id == stop)
    g = generate(tiny.model, tiny.tokenizer, "hello", SamplingSettings(greedy=True, max_new_tokens=10),
                 stop_ids=[stop])
    steps = list(g)
    assert len(steps) == first + 1 and steps[-1].finish == "eos"


@pytest.mark.parametrize("prompt,match", [
    ("", "Type a prompt"),
    ("   \n", "Type a prompt"),
    ("x" * 128, "128 tokens long but this model reads at most 128"),
])
def test_bad_prompts_are_explained(tiny, prompt, match):
    with pytest.raises(ValueError, match=match):
        generate(tiny.model, tiny.tokenizer, prompt)


def test_chat_needs_a_chat_model(tiny, smol):
    with pytest.raises(ValueError, match="no chat template"):
        generate(tiny.model, tiny.tokenizer, "hi", chat=True)
    p = prepare_prompt(smol.tokenizer, "hi", smol.config.max_seq_len, chat=True)
    assert "<|im_start|>" in "".join(p.labels) and p.chat


def test_encoder_cannot_generate():
    from explorer.config import PRESETS
    from explorer.model import Transformer

    with pytest.raises(ValueError, match="needs a decoder"):
        generate(Transformer(PRESETS["tiny-bert"]), ByteTokenizer(), "hello")


@pytest.mark.parametrize("field,value,match", [
    ("temperature", 0, "above 0"),
    ("temperature", -1.0, "above 0"),
    ("temperature", 50.0, "at most 5"),
    ("temperature", float("nan"), "must be a number"),
    ("top_k", -1, "0 \\(off\\) or more"),
    ("top_k", 2.5, "whole number"),
    ("top_p", 0.0, "above 0 and at most 1"),
    ("top_p", 1.5, "above 0 and at most 1"),
    ("min_p", 1.0, "below 1"),
    ("min_p", -0.1, "at least 0"),
    ("repetition_penalty", 0.0, "above 0"),
    ("repetition_penalty", 100.0, "at most 10"),
    ("max_new_tokens", 0, "from 1 to"),
    ("max_new_tokens", 10**6, "from 1 to"),
    ("seed", -3, "seed must be"),
    ("seed", "abc", "seed must be"),
])
def test_absurd_settings_are_explained(field, value, match):
    with pytest.raises(ValueError, match=match):
        SamplingSettings(**{field: value})


def test_replay_speed_times_every_token(tiny):
    g, steps = run(tiny, "hello", SamplingSettings(max_new_tokens=6))
    for use_cache in (True, False):
        r = replay_speed(tiny.model, g.prompt.ids, g.token_ids, use_cache=use_cache)
        assert len(r.seconds) == 6 and all(t > 0 for t in r.seconds) and r.tokens_per_second > 0
    with pytest.raises(ValueError, match="generate some tokens first"):
        replay_speed(tiny.model, g.prompt.ids, [], use_cache=True)


def test_byte_tokenizer_round_trips_utf8():
    tok = ByteTokenizer()
    text = "今天天气 is 好!\n"
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8")) and tok.decode(ids) == text
    assert tok.token_labels(tok.encode("a \n"))[1:] == ["␣", "↵"]


def test_token_bytes_and_labels_of_a_chinese_prompt(smol):
    text = "今天天气很好 ok"
    ids = smol.tokenizer.encode(text, add_special_tokens=False)
    assert b"".join(smol.tokenizer.token_bytes(ids)) == text.encode("utf-8")
    labels = sequence_labels(smol.tokenizer, ids)
    # Every character's pieces are named after it and numbered (今₁/₂ 今₂/₂): the first part of each, or a whole
    # character, read in order gives the text back.
    firsts = [lab[0] for lab in labels if len(lab) == 1 or lab[1:].startswith("₁/")]
    assert "".join(firsts[:6]) == "今天天气很好"
    assert labels[:2] == [part_label("今", 1, 2), part_label("今", 2, 2)] and labels[-1] == " ok"
    assert smol.tokenizer.token_labels(ids[:1]) == ["‹" + " ".join(f"{b:02X}" for b in "今".encode()[:2]) + "›"]
    tok = ByteTokenizer()
    assert sequence_labels(tok, tok.encode("天a\x08")) == [part_label("天", k, 3) for k in (1, 2, 3)] + ["a", "‹08›"]


def test_decode_layout_keeps_every_result():
    import copy

    a = load_tiny("tiny-llama").model
    b = decode_layout_(copy.deepcopy(a))
    w = b.stack.blocks[0].attn.W_q.weight
    assert w.shape == a.stack.blocks[0].attn.W_q.weight.shape and w.stride() == (1, w.shape[0])
    assert b.lm_head.weight is b.stack.embed.tok.weight  # still tied
    tokens = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(b(tokens), a(tokens))
    tok = ByteTokenizer()
    s = SamplingSettings(greedy=True, max_new_tokens=15)
    g = generate(a, tok, "hello", s)
    expected = [x.token_id for x in g]
    # A random model's best two logits can be close: equal up to a near tie.
    assert_same_greedy([x.token_id for x in generate(b, tok, "hello", s)], expected,
                       margins(a, a.cfg, g.prompt.ids, expected), min_compared=10)


def test_a_run_without_labels_names_nothing_and_picks_the_same(tiny):
    """The engine's HTTP server sends token ids: its runs skip naming the tokens, and nothing else changes."""
    s = SamplingSettings(temperature=0.9, top_k=20, max_new_tokens=6, seed=5)
    named = list(generate(tiny.model, tiny.tokenizer, "Once upon", s))
    bare = list(generate(tiny.model, tiny.tokenizer, "Once upon", s, labels=False))
    assert [x.token_id for x in bare] == [x.token_id for x in named]
    assert [[c.token_id for c in x.candidates] for x in bare] == [[c.token_id for c in x.candidates] for x in named]
    assert "".join(x.delta for x in bare) == "".join(x.delta for x in named)
    assert all(x.label == "" and all(c.label == "" for c in x.candidates) for x in bare)
    assert all(x.label for x in named)
