"""explorer.model against torch.nn's reference layers, and the properties every configuration must have."""
import random

import pytest
import torch
import torch.nn as nn

from explorer.config import PRESETS, ModelConfig
from explorer.model import HOOK_NAMES, KVCache, Pass, Transformer, hook_names


def _copy_attention(ours, mha: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        q, k, v = mha.in_proj_weight.chunk(3)
        qb, kb, vb = mha.in_proj_bias.chunk(3)
        for lin, w, b in ((ours.W_q, q, qb), (ours.W_k, k, kb), (ours.W_v, v, vb)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        ours.W_o.weight.copy_(mha.out_proj.weight)
        ours.W_o.bias.copy_(mha.out_proj.bias)


def _copy_ffn(ours, linear1, linear2) -> None:
    with torch.no_grad():
        ours.W_in.weight.copy_(linear1.weight)
        ours.W_in.bias.copy_(linear1.bias)
        ours.W_out.weight.copy_(linear2.weight)
        ours.W_out.bias.copy_(linear2.bias)


def _copy_norm(ours, ref) -> None:
    with torch.no_grad():
        ours.weight.copy_(ref.weight)
        ours.bias.copy_(ref.bias)


@pytest.mark.parametrize("mask", ["bidirectional", "causal"])
def test_attention_layer_equals_multihead_attention(mask):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=48, n_head=6, mask=mask)
    block = Transformer(cfg).stack.blocks[0]
    mha = nn.MultiheadAttention(48, 6, batch_first=True)
    _copy_attention(block.attn, mha)
    x = torch.randn(3, 10, 48)
    causal = nn.Transformer.generate_square_subsequent_mask(10) if mask == "causal" else None
    ref, ref_w = mha(x, x, x, attn_mask=causal, average_attn_weights=False)
    from explorer.model import RunContext
    ctx = RunContext(keep=lambda n: True)
    out = block.attn(x, Pass.build(cfg, x[..., 0], ctx, mask=cfg.mask))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ctx.cache["blocks.0.attn.pattern"], ref_w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_encoder_block_equals_transformer_encoder_layer(norm_first, activation):
    torch.manual_seed(1)
    cfg = ModelConfig(arch="encoder", d_model=32, n_head=4, d_ff=80, mask="bidirectional", activation=activation,
                      norm_position="pre" if norm_first else "post")
    block = Transformer(cfg).stack.blocks[0]
    ref = nn.TransformerEncoderLayer(32, 4, 80, dropout=0.0, activation=activation, batch_first=True,
                                     norm_first=norm_first).eval()
    _copy_attention(block.attn, ref.self_attn)
    _copy_ffn(block.mlp, ref.linear1, ref.linear2)
    _copy_norm(block.ln_attn, ref.norm1)
    _copy_norm(block.ln_mlp, ref.norm2)
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        ours = block(x, Pass.build(cfg, x[..., 0], None, mask=cfg.mask))
        torch.testing.assert_close(ours, ref(x), atol=1e-5, rtol=1e-5)


def test_decoder_block_with_cross_attention_equals_transformer_decoder_layer():
    torch.manual_seed(2)
    cfg = ModelConfig(arch="encoder-decoder", d_model=32, n_head=4, d_ff=64, activation="relu",
                      norm_position="post", positional="sinusoidal")
    block = Transformer(cfg).stack.blocks[0]
    ref = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    _copy_attention(block.attn, ref.self_attn)
    _copy_attention(block.cross_attn, ref.multihead_attn)
    _copy_ffn(block.mlp, ref.linear1, ref.linear2)
    for ours, theirs in ((block.ln_attn, ref.norm1), (block.ln_cross, ref.norm2), (block.ln_mlp, ref.norm3)):
        _copy_norm(ours, theirs)
    tgt, memory = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    with torch.no_grad():
        ours = block(tgt, Pass.build(cfg, tgt[..., 0], None, mask=cfg.mask, memory=memory))
        expected = ref(tgt, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(6), tgt_is_causal=True)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_no_positions_and_bidirectional_mask_is_permutation_equivariant():
    torch.manual_seed(3)
    cfg = ModelConfig(arch="encoder", positional="none", mask="bidirectional", n_layer=2, norm_position="post")
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, cfg.vocab_size, (1, 11))
    perm = torch.randperm(11)
    logits, cache = model.run_with_cache(tokens)
    logits_p, cache_p = model.run_with_cache(tokens[:, perm])
    torch.testing.assert_close(logits_p, logits[:, perm], atol=1e-5, rtol=1e-5)
    pattern, pattern_p = cache["blocks.1.attn.pattern"], cache_p["blocks.1.attn.pattern"]
    torch.testing.assert_close(pattern_p, pattern[:, :, perm][..., perm], atol=1e-6, rtol=1e-5)
    # With positions switched on, the same shuffle is no longer a mere permutation.
    model_pos = Transformer(cfg.replace(positional="sinusoidal")).eval()
    a, b = model_pos(tokens), model_pos(tokens[:, perm])
    assert not torch.allclose(b, a[:, perm], atol=1e-4)


def _random_config(rng: random.Random) -> ModelConfig:
    n_head = rng.choice([1, 2, 4, 6])
    n_kv = rng.choice([h for h in (1, 2, 3, n_head) if n_head % h == 0])
    arch = rng.choice(["decoder", "encoder", "encoder-decoder"])
    mask = "causal" if arch == "encoder-decoder" else rng.choice(["causal", "bidirectional", "sliding_window",
                                                                  "prefix"])
    return ModelConfig(
        arch=arch, n_layer=rng.randint(1, 3), d_model=n_head * rng.choice([4, 8]), n_head=n_head, n_kv_head=n_kv,
        d_ff=rng.randint(8, 40), vocab_size=rng.randint(20, 60), max_seq_len=32,
        activation=rng.choice(["relu", "gelu", "gelu_tanh", "swiglu"]), norm=rng.choice(["layernorm", "rmsnorm"]),
        norm_position=rng.choice(["pre", "post"]), positional=rng.choice(["sinusoidal", "learned", "rope", "alibi",
                                                                          "none"]),
        mask=mask, window=rng.randint(1, 4), prefix_len=rng.randint(0, 5), bias=rng.random() < 0.5,
        tie_embeddings=rng.random() < 0.5, embed_scale=rng.random() < 0.5,
        type_vocab_size=rng.choice([0, 2]), embed_norm=rng.random() < 0.3,
    )


@pytest.mark.parametrize("seed", range(25))
def test_random_configurations_behave(seed):
    rng = random.Random(seed)
    cfg = _random_config(rng)
    torch.manual_seed(seed)
    model = Transformer(cfg).eval()
    T = rng.randint(2, 12)
    tokens = torch.randint(0, cfg.vocab_size, (2, T))
    kw = {"src": torch.randint(0, cfg.vocab_size, (2, rng.randint(1, 9)))} if cfg.arch == "encoder-decoder" else {}
    logits, cache = model.run_with_cache(tokens, **kw)
    assert logits.shape == (2, T, cfg.vocab_size)
    assert list(cache) == hook_names(cfg)
    for i in range(cfg.n_layer):
        pattern = cache[f"blocks.{i}.attn.pattern"]
        assert pattern.shape == (2, cfg.n_head, T, T)
        assert cache[f"blocks.{i}.attn.k"].shape == (2, cfg.n_kv_head, T, cfg.d_head)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, cfg.n_head, T))
        if cfg.mask in ("causal", "sliding_window") or cfg.arch == "encoder-decoder":
            assert (pattern.triu(1) == 0).all()
    torch.testing.assert_close(model(tokens, **kw), logits)
    if cfg.mask in ("causal", "sliding_window"):
        # Changing the last token changes nothing before it.
        changed = tokens.clone()
        changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
        torch.testing.assert_close(model(changed, **kw)[:, :-1], logits[:, :-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rope", "alibi"])
@pytest.mark.parametrize("mask", ["causal", "sliding_window"])
def test_kv_cache_decoding_equals_full_forward(positional, mask):
    torch.manual_seed(4)
    cfg = ModelConfig(positional=positional, mask=mask, window=3, n_head=4, n_kv_head=2, n_layer=2)
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, cfg.vocab_size, (1, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache(cfg.n_layer)
        steps = [model(tokens[:, :5], kv_cache=cache)]
        for t in range(5, 9):
            steps.append(model(tokens[:, t:t + 1], kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 9


def test_run_with_hooks_ablates_a_head():
    torch.manual_seed(5)
    cfg = ModelConfig(n_layer=1, n_head=4)
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, cfg.vocab_size, (1, 6))
    _, cache = model.run_with_cache(tokens)

    def zero_head_2(z, name):
        z = z.clone()
        z[:, 2] = 0
        return z

    ablated_logits, ablated = model.run_with_cache(tokens, hooks={"blocks.0.attn.z": zero_head_2})
    z = cache["blocks.0.attn.z"].clone()
    z[:, 2] = 0
    expected_out = model.stack.blocks[0].attn.W_o(z.transpose(1, 2).reshape(1, 6, cfg.d_model))
    torch.testing.assert_close(ablated["blocks.0.attn.out"], expected_out)
    torch.testing.assert_close(model.run_with_hooks(tokens, {"blocks.0.attn.z": zero_head_2}), ablated_logits)
    assert not torch.allclose(ablated_logits, model(tokens))
    with pytest.raises(ValueError, match="Unknown hook"):
        model.run_with_hooks(tokens, {"blocks.9.attn.z": zero_head_2})


def test_hook_names_are_pinned():
    block = ["resid_pre", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern", "attn.z", "attn.out",
             "resid_mid", "mlp.pre", "mlp.post", "mlp.out", "resid_post"]
    cfg = ModelConfig(n_layer=2)
    assert hook_names(cfg) == (["embed.tok", "embed.pos", "embed.out"]
                               + [f"blocks.{i}.{n}" for i in range(2) for n in block] + ["final", "logits"])
    cross = ["cross_attn." + s for s in ("q", "k", "v", "scores", "pattern", "z", "out")] + ["resid_cross"]
    dec_block = block[:9] + cross + block[9:]
    ed = PRESETS["original-transformer"].replace(n_layer=1)
    assert hook_names(ed) == (["encoder.embed.tok", "encoder.embed.pos", "encoder.embed.out"]
                              + [f"encoder.blocks.0.{n}" for n in block] + ["encoder.final"]
                              + ["embed.tok", "embed.pos", "embed.out"] + [f"blocks.0.{n}" for n in dec_block]
                              + ["final", "logits"])
    bert = PRESETS["tiny-bert"]
    assert "embed.type" in hook_names(bert)
    # Every produced name is documented in HOOK_NAMES.
    documented = set(HOOK_NAMES)
    for name in hook_names(ed) + hook_names(bert):
        generic = name.removeprefix("encoder.")
        parts = generic.split(".")
        if parts[0] == "blocks":
            generic = ".".join(["blocks", "{i}"] + parts[2:])
        assert generic in documented or name == "encoder.final", name


@pytest.mark.parametrize("preset", ["tiny-gpt", "tiny-llama", "original-transformer"])
def test_each_stack_builds_its_mask_once_per_forward(preset, monkeypatch):
    """The mask (and ALiBi / RoPE tables) belong to the call, not to a layer: one per stack, whatever the depth."""
    import explorer.model as model_module

    calls = []
    real = model_module.build_mask
    monkeypatch.setattr(model_module, "build_mask", lambda kind, *a, **kw: calls.append(kind) or real(kind, *a, **kw))
    cfg = PRESETS[preset].replace(n_layer=3, vocab_size=50, max_seq_len=32)
    kw = {"src": torch.arange(4)} if cfg.arch == "encoder-decoder" else {}
    Transformer(cfg)(torch.arange(5), **kw)
    assert calls == (["bidirectional"] if cfg.arch == "encoder-decoder" else []) + [cfg.mask]


def test_cache_subset_and_sequence_limit():
    model = Transformer(PRESETS["tiny-gpt"].replace(max_seq_len=8)).eval()
    _, cache = model.run_with_cache(torch.arange(5), names=["blocks.1.attn.pattern"])
    assert list(cache) == ["blocks.1.attn.pattern"]
    with pytest.raises(ValueError, match="longer than this model's context"):
        model(torch.arange(9))
    with pytest.raises(ValueError, match="needs source tokens"):
        Transformer(PRESETS["original-transformer"].replace(n_layer=1, vocab_size=50))(torch.arange(3))


@pytest.mark.parametrize("kwargs,message", [
    ({"d_model": 100, "n_head": 3}, r"d_model \(100\) must be divisible by n_head \(3\)"),
    ({"n_head": 4, "n_kv_head": 3}, "divisible by n_kv_head"),
    ({"n_head": 2, "n_kv_head": 4}, "cannot be larger than n_head"),
    ({"positional": "rope", "d_model": 6, "n_head": 2}, "must be even"),
    ({"mask": "sliding_window"}, "needs a window"),
    ({"n_layer": 0}, "n_layer must be a whole number"),
    ({"activation": "tanh"}, "activation must be one of"),
    ({"arch": "encoder-decoder", "mask": "bidirectional"}, "must be causal"),
])
def test_impossible_configs_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_replace_rederives_dependent_fields():
    cfg = ModelConfig(d_model=64, n_head=4)
    wider = cfg.replace(d_model=128)
    assert (wider.d_head, wider.d_ff) == (32, 512)
    assert cfg.replace(n_head=8).n_kv_head == 8
