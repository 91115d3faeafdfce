"""The KV-cache tab's library: cache bytes per layout tied to explorer.sizing and to published configs, MLA's
latent cache against DeepSeek-V2's Table 1, and the paging simulator against hand-worked traces and, over many
seeds, against its invariants (no block owned twice, every block back at the end, the counts adding up)."""
import math

import numpy as np
import pytest

from explorer.labs.inference_kvcache import (MLA_LATENT_PER_HEAD_DIM, MLA_ROPE_PER_HEAD_DIM, KVCacheSettings,
                                             PagingSettings, gqa_heads, kv_memory, run_kvcache, run_paging, serve)
from explorer.paging import FREE, BlockPool, Request, make_requests, simulate
from explorer.presets import REAL_MODELS
from explorer.sizing import DTYPE_BYTES, kv_cache_bytes, mla_kv_cache_bytes


# ---- memory per layout -----------------------------------------------------------------------------------------

def test_mla_cache_is_deepseek_v2_table_1():
    # Table 1 of DeepSeek-V2: MLA caches (d_c + d_h^R)·l = 4.5·d_h·l numbers a token, "equivalent to GQA with only
    # 2.25 groups" (2 · 2.25 · d_h · l), at d_c = 4·d_h = 512 and d_h^R = d_h/2 = 64.
    d_h, layers = 128, 60
    got = mla_kv_cache_bytes(layers, 4 * d_h, d_h // 2, batch=1, seq_len=1, dtype="fp16")
    assert got == 4.5 * d_h * layers * 2 == 2 * 2.25 * d_h * layers * 2
    assert mla_kv_cache_bytes(layers, 512, 64, batch=3, seq_len=10, dtype="fp32") == 3 * 10 * layers * 576 * 4
    with pytest.raises(ValueError):
        mla_kv_cache_bytes(layers, 0, 64, 1, 1)


def test_the_preset_mla_ratios_are_deepseek_s_config():
    from transformers import DeepseekV2Config, DeepseekV3Config

    for cfg in (DeepseekV2Config(), DeepseekV3Config()):
        d_h = cfg.qk_nope_head_dim  # 128
        assert MLA_LATENT_PER_HEAD_DIM * d_h == cfg.kv_lora_rank and MLA_ROPE_PER_HEAD_DIM * d_h == cfg.qk_rope_head_dim


def test_smollm2_rows_from_its_config_json():
    """SmolLM2-135M's config.json: 30 layers, 9 heads, 3 key/value heads, head dim 576/9 = 64."""
    result = kv_memory(KVCacheSettings(preset="SmolLM2-135M", kv_dtype="fp16", context=1000, batch=2))
    mha, gqa, mqa, mla = (result.row(x) for x in ("mha", "gqa", "mqa", "mla"))
    assert gqa.own and not mha.own and gqa.kv_heads == 3
    assert gqa.bytes_per_token == 2 * 30 * 3 * 64 * 2
    assert mha.bytes_per_token == 2 * 30 * 9 * 64 * 2 and mqa.bytes_per_token == 2 * 30 * 1 * 64 * 2
    assert mla.bytes_per_token == 30 * (4 * 64 + 32) * 2
    assert gqa.bytes_total == gqa.bytes_per_token * 1000 * 2
    assert gqa.vs_mha == pytest.approx(1 / 3) and mqa.vs_mha == pytest.approx(1 / 9)
    assert result.curves["gqa"][-1] == gqa.bytes_total and result.contexts[-1] == 1000


@pytest.mark.parametrize("preset", ["LLaMA-7B", "Llama-2-70B", "Llama-3-8B"])
def test_every_row_is_sizing_s_count(preset):
    cfg = REAL_MODELS[preset].cfg
    result = kv_memory(KVCacheSettings(preset=preset, kv_dtype="bf16", context=4096, batch=4))
    for row in result.rows:
        if row.layout == "mla":
            expected = mla_kv_cache_bytes(cfg.n_layer, 4 * cfg.d_head, cfg.d_head // 2, 4, 4096, "bf16")
        else:
            expected = kv_cache_bytes(cfg.replace(n_kv_head=row.kv_heads), 4, 4096, "bf16")
        assert row.bytes_total == expected, row
    assert result.own.layout == cfg.attention_kind.lower()
    assert result.weights == result.n_params * DTYPE_BYTES["bf16"]
    passes = result.context_where_cache_passes_weights(result.own.layout, 4)
    assert (passes - 1) * result.own.bytes_per_token * 4 <= result.weights < passes * result.own.bytes_per_token * 4


def test_gqa_row_of_an_mha_model_and_a_custom_shape():
    assert gqa_heads(32, 32) == 8 and gqa_heads(64, 8) == 8 and gqa_heads(9, 3) == 3 and gqa_heads(3, 3) is None
    custom = KVCacheSettings(preset="custom", n_layer=4, n_head=6, n_kv_head=1, d_head=32, kv_lora_rank=64,
                             rope_dim=16, kv_dtype="int8", context=10, batch=1)
    result = kv_memory(custom)
    assert [r.layout for r in result.rows] == ["mha", "mqa", "mla"]  # 6 heads: no divisor in 2..6/4
    assert result.own.layout == "mqa" and result.own.bytes_per_token == 2 * 4 * 1 * 32
    assert result.row("mla").bytes_per_token == 4 * (64 + 16) and result.weights is None


def test_bad_settings_fall_back_with_a_sentence():
    shown = run_kvcache(KVCacheSettings(preset="custom", n_head=12, n_kv_head=5))
    assert shown.error and "n_kv_head" in shown.error and shown.settings.n_kv_head == 12
    shown = run_kvcache(KVCacheSettings(preset="GPT-99", context=0))
    assert shown.settings == KVCacheSettings() and shown.result is not None
    shown = run_paging(PagingSettings(pool_blocks=2, block_size=4, max_len=512))
    assert shown.error and shown.settings.pool_blocks == 128 // 1 and shown.result is not None


# ---- the paging simulator, by hand ------------------------------------------------------------------------------

def test_two_requests_by_hand():
    """Blocks of 4 slots, 4 blocks; r0: prompt 3 then 2 tokens, r1 arrives at step 1: prompt 5 then 1 token.
    Step 0: r0 takes block 0 for its 3 + 1 tokens. Step 1: r1 takes blocks 1, 2 for its 5 + 1; r0's fifth token
    needs a second block, 3. Both finish at step 1: 11 tokens in 16 held slots, the 5 empty ones in the last
    blocks (r0's block 3 holds 1 of 4, r1's block 2 holds 2 of 4). Contiguous: regions of 8 slots, 2 of them."""
    requests = (Request(0, 0, 3, 2), Request(1, 1, 5, 1))
    paged = simulate(requests, "paged", pool_blocks=4, block_size=4, max_len=8, snapshot_steps=(1,))
    assert paged.used.tolist() == [4, 11] and paged.reserved.tolist() == [4, 16]
    assert paged.fragmentation.tolist() == [0, 5] and paged.pending.tolist() == [0, 0]
    snap = paged.snapshots[1]
    assert snap.owner.tolist() == [0, 1, 1, 0] and snap.logical.tolist() == [0, 0, 1, 1]
    assert snap.filled.tolist() == [4, 4, 2, 1] and snap.tables == {0: (0, 3), 1: (1, 2)}
    assert paged.finished == {0: 1, 1: 1} and paged.preemptions == 0

    contiguous = simulate(requests, "contiguous", pool_blocks=4, block_size=4, max_len=8, snapshot_steps=(0, 1))
    assert contiguous.used.tolist() == [4, 11] and contiguous.reserved.tolist() == [8, 16]
    assert contiguous.pending.tolist() == [1, 0] and contiguous.fragmentation.tolist() == [3, 5]
    assert contiguous.snapshots[1].owner.tolist() == [0, 0, 1, 1]
    assert contiguous.snapshots[1].filled.tolist() == [4, 1, 4, 2]


def test_a_preemption_by_hand():
    """Blocks of 2, 3 blocks; r0: 1 + 5 tokens, r1: 1 + 3, both at step 0. At step 1 r0 takes the last free block
    and r1, needing one too, is preempted (it is the latest admitted); it comes back at step 5, when r0 has
    finished, recomputing its 2 tokens, and ends at step 6. Contiguous regions of 6 fit one request at a time."""
    requests = (Request(0, 0, 1, 5), Request(1, 0, 1, 3))
    paged = simulate(requests, "paged", pool_blocks=3, block_size=2, max_len=6)
    assert paged.used.tolist() == [4, 3, 4, 5, 6, 3, 4]
    assert paged.reserved.tolist() == [4, 4, 4, 6, 6, 4, 4]
    assert paged.waiting.tolist() == [0, 1, 1, 1, 1, 0, 0]
    assert paged.preemptions == 1 and paged.finished == {0: 4, 1: 6} and paged.admitted == {0: 0, 1: 0}
    contiguous = simulate(requests, "contiguous", pool_blocks=3, block_size=2, max_len=6)
    assert contiguous.used.tolist() == [2, 3, 4, 5, 6, 2, 3, 4] and set(contiguous.reserved.tolist()) == {6}
    assert contiguous.finished == {0: 4, 1: 7} and contiguous.preemptions == 0
    assert paged.mean_latency(requests) == (5 + 7) / 2 and contiguous.mean_latency(requests) == (5 + 8) / 2


def test_the_requests_are_seeded_and_within_max_len():
    a, b = make_requests(40, 256, 7, 16.0), make_requests(40, 256, 7, 16.0)
    assert a == b and a != make_requests(40, 256, 8, 16.0)
    assert all(1 <= r.prompt <= 128 and r.output >= 1 and r.total <= 256 for r in a)
    assert a[0].arrival == 0 and all(x.arrival <= y.arrival for x, y in zip(a, a[1:]))


# ---- the paging simulator, over many seeds -------------------------------------------------------------------------

def _check_pool(pool: BlockPool) -> None:
    owned = [b for blocks in pool.tables.values() for b in blocks]
    assert len(owned) == len(set(owned)), "a block in two block tables"
    assert set(owned).isdisjoint(pool._free), "a block both owned and free"
    assert len(owned) + pool.n_free == pool.n_blocks
    for rid, blocks in pool.tables.items():
        assert all(pool.owner[b] == rid for b in blocks)
    assert (pool.owner == FREE).sum() == pool.n_free


@pytest.mark.parametrize("seed", range(40))
def test_the_block_pool_never_hands_out_a_block_twice(seed):
    rng = np.random.default_rng(seed)
    pool = BlockPool(int(rng.integers(1, 40)), 4)
    for _ in range(300):
        rid = int(rng.integers(0, 6))
        if rng.random() < 0.7 and pool.n_free:
            pool.allocate(rid)
        else:
            freed = pool.release(rid)
            assert all(pool.owner[b] == FREE for b in freed)
        _check_pool(pool)
    for rid in list(pool.tables):
        pool.release(rid)
    assert pool.n_free == pool.n_blocks and not pool.tables
    with pytest.raises(MemoryError):
        BlockPool(0, 4).allocate(0)


@pytest.mark.parametrize("seed", range(60))
def test_simulations_keep_their_invariants(seed):
    rng = np.random.default_rng(1000 + seed)
    block_size = int(rng.choice([1, 2, 4, 8, 16]))
    max_len = max(2, block_size * int(rng.integers(1, 9)))  # a request has a prompt and an output token
    pool_blocks = math.ceil(max_len / block_size) + int(rng.integers(0, 12))
    requests = make_requests(int(rng.integers(1, 25)), max_len, seed, float(rng.uniform(0.5, 10)))
    steps = tuple(range(0, 400, 3))
    for system in ("paged", "contiguous"):
        trace = simulate(requests, system, pool_blocks=pool_blocks, block_size=block_size, max_len=max_len,
                         snapshot_steps=steps)
        capacity = pool_blocks * block_size
        assert set(trace.finished) == {r.rid for r in requests}, "every request is served"
        assert all(trace.finished[r.rid] >= trace.admitted[r.rid] >= r.arrival for r in requests)
        assert np.all(trace.used <= trace.reserved) and np.all(trace.reserved <= capacity)
        assert np.all(trace.pending >= 0) and np.all(trace.fragmentation >= 0)
        assert np.all(trace.wasted == trace.pending + trace.fragmentation)
        # every generated token is one step of one running request (a preempted request keeps its tokens)
        assert int(trace.running.sum()) == sum(r.output for r in requests)
        assert int(trace.waiting.max()) <= len(requests)
        for snap in trace.snapshots.values():
            owned = [b for blocks in snap.tables.values() for b in blocks]
            assert len(owned) == len(set(owned)), "a block in two block tables"
            assert int(snap.filled.sum()) == trace.used[snap.step]
            assert (snap.owner != FREE).sum() * block_size == trace.reserved[snap.step]
            assert len(snap.tables) == trace.running[snap.step]
            for rid, blocks in snap.tables.items():
                assert [snap.logical[b] for b in blocks] == list(range(len(blocks)))
                if system == "paged":  # only the last block may be partly empty
                    assert all(snap.filled[b] == block_size for b in blocks[:-1]) and snap.filled[blocks[-1]] > 0
        if system == "paged":
            assert np.all(trace.fragmentation < block_size * np.maximum(trace.running, 1))
        else:
            assert trace.preemptions == 0 and trace.running.max() <= capacity // max_len


def test_paging_fits_more_requests_than_contiguous_with_the_defaults():
    result = serve(PagingSettings())
    assert result.regions == 2048 // 512 == result.contiguous.peak_running
    assert result.paged.peak_running > result.regions
    assert result.paged.utilisation() > result.contiguous.utilisation()
    assert result.paged.steps < result.contiguous.steps
