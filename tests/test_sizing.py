"""Parameter counts against the core's Transformer (module by module), memory and compute against the papers'
published figures and against torch."""
import random

import pytest
import torch

from explorer.config import PRESETS, ModelConfig
from explorer.model import KVCache, Transformer
from explorer.presets import REAL_MODELS
from explorer.sizing import (GB, activation_bytes_per_layer, chinchilla_tokens, count_params, human_count,
                             inference_flops_per_token, kv_cache_bytes, model_states_bytes, training_flops,
                             training_memory, training_seconds, weight_bytes)


def _numel(params) -> int:
    seen, total = set(), 0
    for p in params:
        if id(p) not in seen:  # a tied tensor appears twice in named_parameters(remove_duplicate=False)
            seen.add(id(p))
            total += p.numel()
    return total


def _random_config(rng: random.Random) -> ModelConfig:
    arch = rng.choice(["decoder", "encoder", "encoder-decoder"])
    n_head = rng.choice([1, 2, 4, 6])
    n_kv = rng.choice([h for h in (1, 2, 3, 6) if n_head % h == 0 and h <= n_head])
    d_head = rng.choice([4, 8, 10])
    explicit_head = rng.random() < 0.3
    bias = rng.random() < 0.5
    return ModelConfig(
        arch=arch, n_layer=rng.randint(1, 3), n_head=n_head, n_kv_head=n_kv,
        d_model=d_head * n_head + (rng.choice([2, 6]) if explicit_head else 0),
        d_head=d_head if explicit_head else None, d_ff=rng.choice([None, 24, 37]),
        vocab_size=rng.randint(5, 90), max_seq_len=rng.randint(4, 40),
        activation=rng.choice(["relu", "gelu", "gelu_tanh", "swiglu"]), norm=rng.choice(["layernorm", "rmsnorm"]),
        norm_position=rng.choice(["pre", "post"]), positional=rng.choice(["learned", "sinusoidal", "rope", "alibi",
                                                                           "none"]),
        mask="causal" if arch != "encoder" else rng.choice(["causal", "bidirectional"]),
        bias=bias, qkv_bias=rng.choice([None, not bias]), tie_embeddings=rng.random() < 0.5,
        type_vocab_size=rng.choice([0, 0, 2, 3]), embed_norm=rng.random() < 0.4,
    )


CONFIGS = [_random_config(random.Random(seed)) for seed in range(60)] + list(PRESETS.values())


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.activation}-{c.norm}-{c.positional}")
def test_total_matches_the_core_model(cfg):
    model = Transformer(cfg)
    assert count_params(cfg).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg", CONFIGS[:30] + list(PRESETS.values()),
                         ids=lambda c: f"{c.arch}-{c.activation}-{c.norm}-{c.positional}")
def test_every_group_matches_the_modules_that_hold_it(cfg):
    model = Transformer(cfg)
    named = dict(model.named_parameters())  # tied tensors once, under their first name
    b = count_params(cfg)

    def where(pred):
        return sum(p.numel() for n, p in named.items() if pred(n))

    assert b.group_total("attention") == where(lambda n: ".attn." in n or ".cross_attn." in n)
    assert b.group_total("ffn") == where(lambda n: ".mlp." in n)
    assert b.group_total("norms") == where(lambda n: ".ln_" in n or "embed.norm" in n)
    assert b.token_embedding == model.stack.embed.tok.weight.numel()
    expected_pos = sum(m.embed.pos.weight.numel() for m in (model.stack, getattr(model, "encoder", None))
                       if m is not None and hasattr(m.embed, "pos"))
    assert b.position_embedding == expected_pos
    assert b.lm_head == (0 if cfg.tie_embeddings else model.lm_head.weight.numel())
    block = model.stack.blocks[0]
    assert b.per_layer == sum(p.numel() for p in block.parameters())


def test_breakdown_parts_add_up_and_every_share_is_listed():
    b = count_params(REAL_MODELS["LLaMA-7B"].cfg)
    rows = b.rows()
    assert sum(r["total"] for r in rows) == b.total
    assert abs(sum(r["share %"] for r in rows) - 100) < 1e-9
    assert b.embedding + b.non_embedding == b.total
    assert {r["part"] for r in rows} >= {"token embedding", "self-attn W_Q", "FFN W_gate", "LM head (untied)"}


@pytest.mark.parametrize("key", list(REAL_MODELS))
def test_real_presets_match_the_core_model_on_meta(key):
    m = REAL_MODELS[key]
    with torch.device("meta"):
        model = Transformer(m.cfg)
    counted = count_params(m.cfg).total
    assert counted == sum(p.numel() for p in model.parameters())


def test_bert_heads_are_counted_only_when_asked():
    cfg = REAL_MODELS["BERT-base"].cfg
    plain, pooled, mlm = count_params(cfg), count_params(cfg, pooler=True), count_params(cfg, mlm_head=True)
    d, v = cfg.d_model, cfg.vocab_size
    layer = torch.nn.Linear(d, d)
    assert pooled.total - plain.total == sum(p.numel() for p in layer.parameters()) == pooled.pooler
    norm = torch.nn.LayerNorm(d)
    assert mlm.total - plain.total == (sum(p.numel() for p in layer.parameters())
                                       + sum(p.numel() for p in norm.parameters()) + v)


# ---- memory -------------------------------------------------------------------------------------------------

def test_zero_paper_figure_1():
    """Rajbhandari et al. 2019, Figure 1: Psi = 7.5B, N_d = 64, K = 12."""
    per_gpu = [model_states_bytes(7.5e9, 64, stage).total / GB for stage in (0, 1, 2, 3)]
    assert [round(x, 1) for x in per_gpu] == [120.0, 31.4, 16.6, 1.9]


def test_weight_bytes_match_torch_tensors():
    cfg = PRESETS["tiny-llama"]
    model = Transformer(cfg)
    n = count_params(cfg).total
    for dtype, torch_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
        nbytes = sum(p.detach().to(torch_dtype).nbytes for p in model.parameters())
        assert weight_bytes(n, dtype) == nbytes
    assert weight_bytes(n, "int4") == weight_bytes(n, "int8") / 2


def test_adamw_keeps_two_fp32_states_per_parameter():
    """The 12 bytes of optimizer state = fp32 master weights (4) + AdamW's exp_avg and exp_avg_sq (4 + 4)."""
    cfg = PRESETS["tiny-gpt"]
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    opt.step()
    state_bytes = sum(t.nbytes for s in opt.state.values() for t in s.values() if t.dim() > 0)
    master = sum(p.nbytes for p in model.parameters())
    n = count_params(cfg).total
    assert state_bytes + master == model_states_bytes(n).optimizer


@pytest.mark.parametrize("name", ["tiny-gpt", "tiny-llama", "original-transformer"])
def test_kv_cache_bytes_match_the_core_cache(name):
    cfg = PRESETS[name]
    if cfg.arch == "encoder-decoder":
        cfg = cfg.replace(n_layer=1, d_model=32, n_head=4, d_ff=64, vocab_size=50)
    model = Transformer(cfg).eval()
    batch, steps = 3, 7
    cache = KVCache(cfg.n_layer)
    tokens = torch.randint(0, cfg.vocab_size, (batch, steps))
    with torch.no_grad():
        if cfg.arch == "encoder-decoder":
            memory = model.encode(tokens)
            for t in range(steps):
                model(tokens[:, t:t + 1], kv_cache=cache, memory=memory)
            cross = sum(blk.cross_attn.W_k(memory).numel() + blk.cross_attn.W_v(memory).numel()
                        for blk in model.stack.blocks) * memory.element_size()
            assert kv_cache_bytes(cfg, batch, steps, "fp32") == cache.nbytes() + cross
        else:
            for t in range(steps):
                model(tokens[:, t:t + 1], kv_cache=cache)
            assert kv_cache_bytes(cfg, batch, steps, "fp32") == cache.nbytes()


def test_kv_cache_of_a_sliding_window_model_stops_growing():
    cfg = REAL_MODELS["Llama-2-7B"].cfg.replace(mask="sliding_window", window=4096)
    assert kv_cache_bytes(cfg, 1, 32768) == kv_cache_bytes(cfg, 1, 4096) == 2 * kv_cache_bytes(cfg, 1, 2048)


def test_encoders_have_no_kv_cache():
    with pytest.raises(ValueError, match="no KV cache"):
        kv_cache_bytes(REAL_MODELS["BERT-base"].cfg, 1, 128)


def test_korthikanti_selective_recomputation_saves_70_percent_for_gpt3():
    """Korthikanti et al. 2022, Section 5: selective recomputation cuts GPT-3's activation memory by 70%
    (5as/h = 80 against 34) and MT-NLG's (a=128, h=20480) by 65%."""
    gpt3 = REAL_MODELS["GPT-3 175B"].cfg
    saved = 1 - activation_bytes_per_layer(gpt3, 1, 2048, "selective") / activation_bytes_per_layer(gpt3, 1, 2048)
    assert round(saved, 2) == 0.70
    mtnlg = ModelConfig(n_layer=105, d_model=20480, n_head=128, vocab_size=50257, max_seq_len=2048)
    saved = 1 - activation_bytes_per_layer(mtnlg, 1, 2048, "selective") / activation_bytes_per_layer(mtnlg, 1, 2048)
    assert round(saved, 2) == 0.65


def test_training_memory_adds_activations_of_every_layer_to_zero_states():
    cfg = REAL_MODELS["GPT-2 small"].cfg
    mem = training_memory(cfg, n_gpus=8, zero_stage=2, micro_batch=4, seq_len=512)
    assert mem.states == model_states_bytes(count_params(cfg).total, 8, 2)
    assert mem.activations == cfg.n_layer * activation_bytes_per_layer(cfg, 4, 512)
    assert mem.total == mem.states.total + mem.activations


# ---- compute ------------------------------------------------------------------------------------------------

def test_gpt3_training_compute_is_3_14e23():
    """Brown et al. 2020, Table D.1: 3.14e23 FLOPs for 175B parameters on 300B tokens."""
    flops = training_flops(REAL_MODELS["GPT-3 175B"].total, 300e9)
    assert abs(flops / 3.14e23 - 1) < 0.005


def test_chinchilla_70b_saw_1_4_trillion_tokens():
    """Hoffmann et al. 2022: Chinchilla, 70B parameters, 1.4T tokens."""
    assert chinchilla_tokens(70e9) == pytest.approx(1.4e12)


def test_inference_and_time_to_train():
    assert inference_flops_per_token(7e9) == 1.4e10
    # 1e21 FLOPs on 10 GPUs of 100 TFLOP/s at 50%: 1e21 / 5e14 = 2e6 seconds.
    assert training_seconds(1e21, 10, 100, 0.5) == pytest.approx(2e6)


@pytest.mark.parametrize("call, message", [
    (lambda: model_states_bytes(-5, 1, 0), "positive"),
    (lambda: model_states_bytes(1e9, 0, 0), "GPUs"),
    (lambda: model_states_bytes(1e9, 4, 5), "ZeRO stage"),
    (lambda: weight_bytes(1e9, "fp8x"), "dtype"),
    (lambda: kv_cache_bytes(PRESETS["tiny-gpt"], -1, 10), "batch"),
    (lambda: training_seconds(1e20, 8, 300, 1.5), "Utilisation"),
    (lambda: training_flops(1e9, 0), "tokens"),
])
def test_bad_inputs_get_a_sentence(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_human_count():
    assert human_count(124_439_808) == "124.4M"
    assert human_count(6_738_415_616) == "6.74B"


# ---- the course's tables ------------------------------------------------------------------------------------

def test_course_gpt_table_holds_d_ff_under_hidden_size_and_d_model_under_attention_dim():
    from explorer.course_tables import COURSE_TABLES, MISLABELLED, OK
    gpt = COURSE_TABLES[0]
    for row in gpt.checks:
        cfg = REAL_MODELS[row.preset].cfg
        cells = {c.column: c for c in row.cells}
        assert int(cells["Hidden_size"].notes_value) == cfg.d_ff == 4 * cfg.d_model
        assert cells["Hidden_size"].verdict == MISLABELLED and "d_ff" in cells["Hidden_size"].why
        # The notes' MHA code calls the width of all heads together dim_k: 注意力维度 = n_h·d_h = d_model is right.
        assert int(cells["注意力维度"].notes_value) == cfg.d_model
        assert cells["注意力维度"].verdict == OK and "d_model" in cells["注意力维度"].why
        assert int(cells["Decoder Layer"].notes_value) == cfg.n_layer
        assert int(cells["注意力头数"].notes_value) == cfg.n_head


def test_course_size_cells_are_judged_by_rounding_the_exact_count():
    from explorer.course_tables import COURSE_TABLES, OK, parse_size
    for table in COURSE_TABLES:
        for row in table.checks:
            total = REAL_MODELS[row.preset].total
            for cell in row.cells:
                if cell.column in ("总参数量", "整体参数量"):
                    value, decimals = parse_size(cell.notes_value)
                    unit = value / float(cell.notes_value[:-1])
                    assert (cell.verdict == OK) == (round(total / unit, decimals) == float(cell.notes_value[:-1]))
    flagged = [c for r in COURSE_TABLES[0].checks for c in r.cells if c.column == "总参数量" and c.verdict != OK]
    assert [c.notes_value for c in flagged] == ["1.5B"]  # GPT-2 XL has 1.56B


def test_course_bert_llama_table_dimensions_are_right():
    from explorer.course_tables import COURSE_TABLES, OK
    for row in COURSE_TABLES[1].checks:
        assert all(c.verdict == OK for c in row.cells[:3]), row.notes_model
