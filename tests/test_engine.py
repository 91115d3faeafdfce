"""The shared batched decoding engine (issue 12 §1): rows of different lengths decoded together give what each
gives alone, requests join and leave between steps, the line, the cap, Stop, a reader that stops reading, errors
and the thread's life.

Tolerances: a batched step multiplies B rows by each weight matrix at once, and a CPU's GEMM may group the sums of
B rows differently from one row (and the attention of a row padded to the longest row sums over extra exact
zeros); that is the "same network, sums in another order" drift of tests/numerics.py (``logit_drift``). So token
ids are compared exactly (sampling: a draw changes only within that drift of a boundary, see
tests/test_generation.py::test_kv_cache_on_equals_off) or, for greedy, up to a near tie (tests/greedy.py), and
probabilities within the drift's bound (``probs_close``)."""
from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest
import torch

from explorer import limits, priority
from explorer.config import ModelConfig
from explorer.engine import Request, engine_for, engine_stats
from explorer.generation import Generation, Prompt, generate, prepare_prompt, solo_generation
from explorer.model import KVCache, SlotKVCache, Transformer
from explorer.models.tiny import load_tiny
from explorer.sampling import SamplingSettings
from tests.greedy import assert_same_greedy, margins
from tests.numerics import logit_drift, probs_close

PROMPTS = ["hi", "The quick brown fox jumps over the lazy dog, and then", "a longer prompt of several words " * 3,
           "x", "今天天气"]


def fresh_tiny(name: str = "tiny-llama"):
    """A model of its own per test: its engine (and its counters) start from nothing."""
    return load_tiny(name)


def ids_of(run) -> list[int]:
    return [s.token_id for s in run]


def interleave(runs: list[Generation]) -> list[list]:
    """Consume several runs from one thread, one step of each in turn: all of them sit in the engine at once."""
    out: list[list] = [[] for _ in runs]
    live = set(range(len(runs)))
    while live:
        for i in sorted(live):
            step = next(runs[i], None)
            if step is None:
                live.discard(i)
            else:
                out[i].append(step)
    return out


def assert_like_solo(pm, prompt, settings, steps, **kw):
    """``steps`` (served by the engine among others) are those of the eager reference run alone."""
    ref = list(solo_generation(pm.model, pm.tokenizer, prompt, settings, stop_ids=pm.eos_token_ids, **kw))
    got, want = [s.token_id for s in steps], [s.token_id for s in ref]
    prompt_ids = prepare_prompt(pm.tokenizer, prompt, pm.config.max_seq_len, chat=kw.get("chat", False)).ids
    m = margins(pm.model, pm.config, prompt_ids, want)
    if settings.greedy:
        compared = assert_same_greedy(got, want, m, min_compared=min(len(want), 3))
    else:
        assert got == want
        compared = len(want)
    drift = logit_drift(m.logits, pm.config).tolist()
    for a, b, d in list(zip(steps, ref, drift))[:compared]:
        assert a.position == b.position and a.finish == b.finish
        assert probs_close(a.prob, b.prob, d) and probs_close(a.model_prob, b.model_prob, d), (a.index, a.prob, b.prob)
        assert [c.token_id for c in a.candidates][:1] == [c.token_id for c in b.candidates][:1]
        if b.attention_rows is not None:  # float16 rows: 2^-11 relative, plus the drift
            np.testing.assert_allclose(a.attention, b.attention, rtol=2e-3, atol=1e-3)
    return ref


# ---------------------------------------------------------------------------------------------------------------
# The model's slot cache: rows at their own positions give what each row gives alone.

@pytest.mark.parametrize("overrides", [
    dict(positional="learned"),
    dict(positional="sinusoidal", norm_position="post"),
    dict(positional="alibi"),
    dict(positional="rope", norm="rmsnorm", activation="swiglu", n_kv_head=2),
    dict(positional="none"),
    dict(mask="sliding_window", window=5),
    dict(mask="prefix", prefix_len=11),
])
def test_slot_cache_rows_equal_each_row_alone(overrides):
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, max_seq_len=64, **overrides)
    model = Transformer.from_seed(cfg, 0).eval()
    gen = torch.Generator().manual_seed(1)
    lengths = [13, 3, 29, 1]
    texts = [torch.randint(0, cfg.vocab_size, (n + 2,), generator=gen) for n in lengths]
    slots = SlotKVCache(cfg, slots=len(lengths), capacity=40)
    solo = []
    with torch.inference_mode():
        for row, (n, ids) in enumerate(zip(lengths, texts)):
            model(ids[None, :n], kv_cache=slots.rows(row, row + 1), head=False)  # each row's prefill
            slots.lengths[row] += n
            cache = KVCache(cfg.n_layer)
            model(ids[None, :n], kv_cache=cache)
            solo.append((cache, ids))
        for step in range(2):  # two batched decoding steps, every row at its own position
            tokens = torch.stack([ids[n + step] for n, ids in zip(lengths, texts)])[:, None]
            batched = model(tokens, kv_cache=slots.rows(0, len(lengths)))[:, -1]
            for row in range(len(lengths)):
                slots.lengths[row] += 1
                cache, ids = solo[row]
                alone = model(ids[None, lengths[row] + step:lengths[row] + step + 1], kv_cache=cache)[0, -1]
                # Two layers of width 32 with O(1) values: the batch regroups the same sums (~1e-7 each); a
                # position, mask or padding mistake moves logits by O(0.1).
                torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("overrides", [
    dict(positional="learned"),
    dict(positional="sinusoidal", norm_position="post"),
    dict(positional="alibi"),
    dict(positional="rope", norm="rmsnorm", activation="swiglu", n_kv_head=2),
    dict(mask="sliding_window", window=5),
    dict(mask="prefix", prefix_len=11),
    dict(mask="bidirectional", positional="alibi"),
])
def test_slot_pack_segments_equal_each_row_alone(overrides):
    """Several rows' new tokens laid end to end in one forward (a class's prompts read at once): each segment's
    outputs are what its row gives read alone, some rows starting empty, some continuing a cached text."""
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, max_seq_len=64, **overrides)
    model = Transformer.from_seed(cfg, 0).eval()
    gen = torch.Generator().manual_seed(2)
    # Rows 1 and 3 continue a cached text (past the prefix: a prefix-LM's prefix is read in one piece), the others
    # start their prompt.
    cached, new = [0, 12, 0, 11, 0], [7, 9, 1, 13, 20]
    if cfg.mask == "bidirectional":  # a bidirectional text cannot be split: every row is read whole
        cached = [0] * len(new)
    texts = [torch.randint(0, cfg.vocab_size, (c + n,), generator=gen) for c, n in zip(cached, new)]
    slots = SlotKVCache(cfg, slots=6, capacity=40)
    order = [4, 0, 3, 1, 2]  # rows listed out of order, row 5 unused: segments name their rows
    with torch.inference_mode():
        for row, (c, ids) in enumerate(zip(cached, texts)):
            if c:
                model(ids[None, :c], kv_cache=slots.rows(row, row + 1), head=False)
                slots.lengths[row] += c
        pack = slots.pack(order, [new[r] for r in order])
        packed = model(torch.cat([texts[r][cached[r]:] for r in order])[None], kv_cache=pack)[0]  # (T, V)
        for r in order:
            slots.lengths[r] += new[r]
        q = 0
        for r in order:
            alone = model(texts[r][None])[0, cached[r]:]  # the whole text, no cache: the reference
            # Two layers of width 32 with O(1) values: the pack regroups the same sums (~1e-7 each); a position,
            # mask or segment mistake moves logits by O(0.1).
            torch.testing.assert_close(packed[q:q + new[r]], alone, atol=1e-5, rtol=1e-5)
            q += new[r]
        assert slots.lengths[:5] == [c + n for c, n in zip(cached, new)] and slots.lengths[5] == 0
        if cfg.mask != "bidirectional":  # the cache the pack wrote serves the rows' next step as a solo read
            step = model(torch.tensor([[3]] * 5), kv_cache=slots.rows(0, 5))[:, -1]
            for r in range(5):
                if cfg.mask == "prefix" and len(texts[r]) < cfg.prefix_len:
                    continue  # a token added inside the prefix changes what the earlier ones see: no solo equal
                alone = model(torch.cat([texts[r], torch.tensor([3])])[None])[0, -1]
                torch.testing.assert_close(step[r], alone, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Identity with a run alone.

@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt"])
def test_mixed_lengths_joining_mid_run_equal_solo(name):
    pm = fresh_tiny(name)
    greedy = SamplingSettings(greedy=True, max_new_tokens=24)
    sampled = [SamplingSettings(temperature=1.0, top_k=0, max_new_tokens=20, seed=s) for s in (1, 2)]
    first = generate(pm.model, pm.tokenizer, PROMPTS[1], greedy, attention=True)
    head = [next(first) for _ in range(5)]  # running alone for five steps, then others join
    joiners = [generate(pm.model, pm.tokenizer, PROMPTS[0], sampled[0], attention=True),
               generate(pm.model, pm.tokenizer, PROMPTS[2], sampled[1]),
               generate(pm.model, pm.tokenizer, PROMPTS[3], greedy)]
    rest = interleave([first] + joiners)
    assert_like_solo(pm, PROMPTS[1], greedy, head + rest[0], attention=True)
    assert_like_solo(pm, PROMPTS[0], sampled[0], rest[1], attention=True)
    assert_like_solo(pm, PROMPTS[2], sampled[1], rest[2])
    assert_like_solo(pm, PROMPTS[3], greedy, rest[3])
    stats = engine_stats(pm.model)
    assert max(stats["batch_sizes"]) >= 3, stats  # they really were decoded together
    assert stats["tokens_total"] == sum(len(r) for r in rest) + 5


def test_a_long_prompt_is_read_in_chunks_between_the_others_steps():
    pm = fresh_tiny()
    s = SamplingSettings(greedy=True, max_new_tokens=30)
    sampled = SamplingSettings(temperature=1.0, max_new_tokens=12, seed=4)
    first = generate(pm.model, pm.tokenizer, "already running", s)
    head = [next(first) for _ in range(2)]
    long = generate(pm.model, pm.tokenizer, PROMPTS[2], sampled, prefill_chunk=8, attention=True)
    long.place()  # joins now; its prompt is read 8 tokens per engine step while the first run goes on
    rest_first = [next(first) for _ in range(8)]
    chunks = engine_stats(pm.model)["prefill_chunks"]
    steps = interleave([first, long])
    assert_like_solo(pm, "already running", s, head + rest_first + steps[0])
    assert_like_solo(pm, PROMPTS[2], sampled, steps[1], prefill_chunk=8, attention=True)
    n_prompt = len(prepare_prompt(pm.tokenizer, PROMPTS[2], pm.config.max_seq_len))
    assert engine_stats(pm.model)["prefill_chunks"] >= -(-n_prompt // 8) + 1  # both prompts' chunks
    assert 0 < chunks  # some chunks were read while the first run was decoding
    assert steps[1][0].tokens_read == n_prompt


def test_a_class_joining_at_once_is_read_in_one_forward_per_step_with_a_long_prompt_among_them(monkeypatch):
    """Twelve students press Generate in the same instant: every short prompt and the long prompt's first chunk
    are read in the first forward (within the step's budget), the long prompt's other chunks in the next steps,
    and every answer is the one its prompt gets alone."""
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    monkeypatch.setattr(engine, "max_batch", 16)
    shorts = [PROMPTS[i % 2 * 3] + str(i) * (i % 4) for i in range(11)]  # "hi..." and "x...", 2-5 tokens
    jobs = [(p, SamplingSettings(greedy=i % 2 == 0, temperature=1.0, max_new_tokens=8 + i, seed=i), {})
            for i, p in enumerate(shorts)]
    jobs.insert(5, (PROMPTS[2], SamplingSettings(greedy=True, max_new_tokens=10), dict(prefill_chunk=16)))
    with priority.interactive():  # the engine waits for the page: all twelve are in before its next step
        runs = [generate(pm.model, pm.tokenizer, p, s, attention=i % 3 == 0, **kw)
                for i, (p, s, kw) in enumerate(jobs)]
        for r in runs:
            r.place()
    out = interleave(runs)
    for i, ((prompt, settings, kw), steps) in enumerate(zip(jobs, out)):
        assert_like_solo(pm, prompt, settings, steps, attention=i % 3 == 0, **kw)
    n_long = len(prepare_prompt(pm.tokenizer, PROMPTS[2], pm.config.max_seq_len))
    long_chunks = -(-n_long // 16)
    assert sum(len(prepare_prompt(pm.tokenizer, p, pm.config.max_seq_len)) for p in shorts) + 16 \
        <= engine.prefill_budget  # what makes one forward enough for the first step
    stats = engine_stats(pm.model)
    assert stats["prefill_chunks"] == len(shorts) + long_chunks
    assert stats["prefill_forwards"] == long_chunks  # shorts rode along with the long prompt's first chunk
    # Then decoded together: a row whose reader is behind sits a step out, so not every step holds all twelve.
    assert max(stats["batch_sizes"]) >= len(jobs) // 2


def test_a_class_larger_than_the_budget_is_read_in_arrival_order(monkeypatch):
    """A budget of 6 tokens per step: the prompts are read a few per forward, earliest first, and a long prompt's
    chunk that does not fit lets shorter later ones go without waiting for ever itself."""
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    monkeypatch.setattr(engine, "max_batch", 8)
    monkeypatch.setattr(engine, "prefill_budget", 6)
    prompts = ["hi", "ab", PROMPTS[1], "cd", "ef", "x"]
    s = SamplingSettings(greedy=True, max_new_tokens=4)
    with priority.interactive():
        runs = [generate(pm.model, pm.tokenizer, p, s, prefill_chunk=8) for p in prompts]
        for r in runs:
            r.place()
    out = interleave(runs)
    for p, steps in zip(prompts, out):
        assert_like_solo(pm, p, s, steps, prefill_chunk=8)
    stats = engine_stats(pm.model)
    n = [len(prepare_prompt(pm.tokenizer, p, pm.config.max_seq_len)) for p in prompts]
    assert stats["prefill_chunks"] == sum(-(-k // 8) for k in n if k > 1)  # a 1-token prompt is a decoding step
    assert stats["prefill_forwards"] < stats["prefill_chunks"]


def test_context_full_and_max_new_tokens_as_alone():
    pm = fresh_tiny()
    long_prompt = "y" * (pm.config.max_seq_len - 6)
    s = SamplingSettings(greedy=True, max_new_tokens=50)
    runs = [generate(pm.model, pm.tokenizer, long_prompt, s), generate(pm.model, pm.tokenizer, "short", s),
            generate(pm.model, pm.tokenizer, "abc", SamplingSettings(greedy=True, max_new_tokens=3))]
    out = interleave(runs)
    assert out[0][-1].finish == "context_full" and len(out[0]) == 6
    assert out[1][-1].finish == "max_new_tokens" and len(out[1]) == 50
    assert out[2][-1].finish == "max_new_tokens" and len(out[2]) == 3
    for prompt, settings, steps in zip([long_prompt, "short", "abc"], [s, s, runs[2].settings], out):
        assert_like_solo(pm, prompt, settings, steps)


def test_many_threads_at_once_get_their_own_answers():
    pm = fresh_tiny()
    jobs = [(PROMPTS[i % len(PROMPTS)], SamplingSettings(greedy=i % 3 == 0, temperature=0.9, max_new_tokens=12 + i,
                                                         seed=i)) for i in range(12)]
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(i):
        run = generate(pm.model, pm.tokenizer, jobs[i][0], jobs[i][1])
        barrier.wait()
        results[i] = list(run)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for (prompt, settings), steps in zip(jobs, results):
        assert_like_solo(pm, prompt, settings, steps)
    stats = engine_stats(pm.model)
    assert max(stats["batch_sizes"]) <= stats["max_batch"]  # the cap holds
    assert max(stats["batch_sizes"]) > 1


# ---------------------------------------------------------------------------------------------------------------
# SmolLM2: real prompts, chat, EOS, against the eager loop and against transformers.

@pytest.fixture(scope="module")
def smol():
    from tests.pretrained_models import ours
    return ours("smollm2-135m")


def test_smollm2_chat_and_plain_prompts_joining_mid_run_equal_solo(smol):
    chat = SamplingSettings(greedy=True, max_new_tokens=40)
    plain = SamplingSettings(greedy=True, max_new_tokens=10)
    sampled = SamplingSettings(temperature=0.8, top_p=0.9, max_new_tokens=10, seed=7)
    first = generate(smol.model, smol.tokenizer, "What is 2+2?", chat, chat=True, stop_ids=smol.eos_token_ids)
    head = [next(first) for _ in range(3)]
    others = [generate(smol.model, smol.tokenizer, "The capital of France is", plain, stop_ids=smol.eos_token_ids),
              generate(smol.model, smol.tokenizer, "Tell me a story about a cat.", sampled, chat=True,
                       stop_ids=smol.eos_token_ids, attention=True)]
    rest = interleave([first] + others)
    steps = head + rest[0]
    assert steps[-1].finish == "eos"  # the chat answer ends itself, as alone
    assert_like_solo(smol, "What is 2+2?", chat, steps, chat=True)
    assert_like_solo(smol, "The capital of France is", plain, rest[1])
    assert_like_solo(smol, "Tell me a story about a cat.", sampled, rest[2], chat=True, attention=True)
    assert max(engine_stats(smol.model)["batch_sizes"]) >= 2


def test_smollm2_in_a_batch_equals_transformers_generate(smol):
    from tests.hf_reference import hf_causal_lm, hf_greedy
    hf = hf_causal_lm(smol.source)
    prompt = prepare_prompt(smol.tokenizer, "The three primary colors are", smol.config.max_seq_len)
    neighbour = generate(smol.model, smol.tokenizer, "Once upon a time, in a small village,",
                         SamplingSettings(temperature=1.0, max_new_tokens=12, seed=3))
    mine = generate(smol.model, smol.tokenizer, prompt, SamplingSettings(greedy=True, max_new_tokens=12))
    got = [s.token_id for s in interleave([neighbour, mine])[1]]
    want = hf_greedy(hf, list(prompt.ids), 12, smol.tokenizer.eos_token_id)
    assert_same_greedy(got, want, margins(hf, smol.config, prompt.ids, want), min_compared=6)


# ---------------------------------------------------------------------------------------------------------------
# The line, the cap, Stop, a reader that stops reading.

def test_places_in_line_and_close_frees_the_slot(monkeypatch):
    pm = fresh_tiny()
    monkeypatch.setattr(engine_for(pm.model), "max_batch", 1)
    monkeypatch.setattr(engine_for(pm.model), "park_after_s", 600)  # the holder keeps its slot while unread
    s = SamplingSettings(greedy=True, max_new_tokens=6)
    a = generate(pm.model, pm.tokenizer, "first", SamplingSettings(greedy=True, max_new_tokens=200))
    b, c = (generate(pm.model, pm.tokenizer, p, s) for p in ("second", "third"))
    next(a)
    assert [a.place(), b.place(), c.place()] == [0, 1, 2]
    c.close()  # leaving the line
    assert b.place() == 1 and c.place() == 0 and list(c) == []
    assert engine_stats(pm.model)["running"] == 1  # the cap: b waits while a holds the only slot
    a.close()  # Stop: the slot goes to the next in line at the engine's next step
    steps = list(b)
    assert b.place() == 0 and len(steps) == 6
    assert_like_solo(pm, "second", s, steps)
    stats = engine_stats(pm.model)
    assert stats["running"] == 0 and stats["waiting"] == 0 and max(stats["batch_sizes"]) == 1


def test_a_reader_that_stops_is_not_decoded_ahead_and_is_parked_for_others(monkeypatch):
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    monkeypatch.setattr(engine, "max_batch", 1)
    monkeypatch.setattr(engine, "park_after_s", 0.2)
    s = SamplingSettings(temperature=1.0, max_new_tokens=100, seed=9)
    idle = generate(pm.model, pm.tokenizer, "idle reader", s)
    first = next(idle)
    time.sleep(0.5)
    decoded = engine_stats(pm.model)["tokens_total"]
    assert decoded <= 1 + engine.buffer  # not decoded far ahead of its reader
    other = generate(pm.model, pm.tokenizer, "someone waiting", SamplingSettings(greedy=True, max_new_tokens=5))
    assert len(list(other)) == 5  # the idle run gave its slot up
    rest = list(idle)  # read again: it rejoins, re-reads its text, and goes on exactly as alone
    assert_like_solo(pm, "idle reader", s, [first] + rest)
    assert engine_stats(pm.model)["tokens_total"] == 5 + 100


def test_steps_ready_counts_the_steps_decoded_ahead_of_the_reader():
    """The generation page draws the text only when it has read every step decoded so far (labs/generation.py)."""
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    run = generate(pm.model, pm.tokenizer, "read me slowly", SamplingSettings(greedy=True, max_new_tokens=20))
    assert run.steps_ready() == 0  # nothing asked yet
    first = next(run)
    deadline = time.monotonic() + 30
    while run.steps_ready() < engine.buffer and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.steps_ready() == engine.buffer  # decoded ahead up to the buffer, and no further
    ahead = [next(run) for _ in range(engine.buffer)]
    assert [s.index for s in [first, *ahead]] == list(range(engine.buffer + 1))
    assert len(list(run)) == 20 - engine.buffer - 1
    assert run.steps_ready() == 0


def test_a_dropped_run_leaves_the_engine():
    pm = fresh_tiny()
    run = generate(pm.model, pm.tokenizer, "abandoned", SamplingSettings(greedy=True, max_new_tokens=200))
    next(run)
    del run  # a closed tab: the session and its run are dropped without close()
    gc.collect()
    deadline = time.monotonic() + 10
    while engine_stats(pm.model)["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine_stats(pm.model)["running"] == 0
    assert engine_stats(pm.model)["tokens_total"] <= 1 + engine_for(pm.model).buffer + 1


# ---------------------------------------------------------------------------------------------------------------
# Failures and the thread's life.

def test_a_failing_request_does_not_stop_the_engine_or_the_others():
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    s = SamplingSettings(greedy=True, max_new_tokens=8)
    good = generate(pm.model, pm.tokenizer, "fine", s)
    next(good)
    bad = engine.submit(Request([1, 2, pm.config.vocab_size + 5], s, attention=False, stop_ids=frozenset(),
                                prefill_chunk=128))  # past the checks of generate(): fails inside the engine
    with pytest.raises(IndexError):
        engine.take(bad, timeout=30)
    assert len(list(good)) == 7
    assert engine_stats(pm.model)["thread_alive"]
    assert_like_solo(pm, "fine", s, list(generate(pm.model, pm.tokenizer, "fine", s)))
    with pytest.raises(ValueError, match="not in this model's vocabulary"):
        generate(pm.model, pm.tokenizer, Prompt(ids=(1, 999), labels=("a", "b"), chat=False, text="?"), s)


def test_the_thread_ends_when_idle_and_starts_again():
    pm = fresh_tiny()
    engine = engine_for(pm.model)
    engine.idle_exit_s = 0.2
    s = SamplingSettings(greedy=True, max_new_tokens=6)
    first = ids_of(generate(pm.model, pm.tokenizer, "again", s))
    deadline = time.monotonic() + 10
    while engine_stats(pm.model)["thread_alive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = engine_stats(pm.model)
    assert not stats["thread_alive"] and stats["cache_bytes"] == 0 and stats["prefix_cache_bytes"] == 0
    assert ids_of(generate(pm.model, pm.tokenizer, "again", s)) == first
    assert engine_stats(pm.model)["threads_started"] == 2


def test_how_long_the_thread_outlives_its_last_request_is_a_setting(monkeypatch):
    from explorer.engine import IDLE_EXIT_S, default_idle_exit_s
    for raw, want in (("", IDLE_EXIT_S), ("2.5", 2.5), ("soon", IDLE_EXIT_S), ("0", IDLE_EXIT_S), ("1e9", IDLE_EXIT_S)):
        monkeypatch.setenv("EXPLORER_ENGINE_IDLE_EXIT_S", raw)
        assert default_idle_exit_s() == want, raw
    assert engine_for(fresh_tiny().model).idle_exit_s == IDLE_EXIT_S


def test_one_engine_per_model_and_it_goes_with_the_model():
    pm = fresh_tiny()
    assert engine_for(pm.model) is engine_for(pm.model)
    assert engine_for(pm.model) is not engine_for(fresh_tiny().model)
    ids_of(generate(pm.model, pm.tokenizer, "bye", SamplingSettings(greedy=True, max_new_tokens=3)))
    ref = weakref.ref(engine_for(pm.model))
    model_ref = weakref.ref(pm.model)
    del pm
    gc.collect()
    assert model_ref() is None
    deadline = time.monotonic() + 10  # its idle thread notices within a second and ends
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    assert ref() is None


def test_engine_stats_contract():
    pm = fresh_tiny()
    assert engine_stats(pm.model)["steps"] == 0
    list(generate(pm.model, pm.tokenizer, "count", SamplingSettings(greedy=True, max_new_tokens=5)))
    stats = engine_stats(pm.model)
    assert {"running", "waiting", "steps", "tokens_total", "batch_sizes"} <= set(stats)
    assert stats["tokens_total"] == 5 and stats["steps"] == 4 and stats["batch_sizes"] == {1: 4}


def test_the_engine_lets_interactive_work_go_first_and_caps_new_tokens():
    pm = fresh_tiny()
    run = generate(pm.model, pm.tokenizer, "patient", SamplingSettings(greedy=True, max_new_tokens=3))
    with priority.interactive():  # a page computing: the engine's next step waits (at most max_wait_s)
        run.place()
        time.sleep(0.3)
        assert engine_stats(pm.model)["tokens_total"] == 0
    assert len(list(run)) == 3
    too_many = SamplingSettings(greedy=True)
    object.__setattr__(too_many, "max_new_tokens", limits.GENERATION_MAX_NEW_TOKENS + 1)  # past its own check
    with pytest.raises(ValueError, match="new tokens"):
        engine_for(pm.model).submit(Request([1, 2], too_many, attention=False, stop_ids=frozenset(),
                                            prefill_chunk=8))
