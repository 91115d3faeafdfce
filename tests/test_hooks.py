"""run_with_hooks keeps its promise for every name in HOOK_NAMES: a replaced tensor is what the rest of the forward
uses, down to the logits. The attention steps are checked against a computation written out by hand."""
from __future__ import annotations

import functools
import math
import re
import zlib

import pytest
import torch

from explorer.attention import build_mask, repeat_kv
from explorer.config import ModelConfig
from explorer.model import HOOK_NAMES, KVCache, Transformer, hook_names

# One configuration per family, two layers each (the first and the last block), together firing every name in
# HOOK_NAMES (test_configs_cover_every_hook_name checks it): GPT (learned positions), LLaMA (RoPE, SwiGLU,
# RMSNorm, GQA), an ALiBi post-norm decoder with MQA, BERT (segments, embedding norm), an encoder without positions,
# and the original encoder-decoder (sinusoidal, cross-attention).
CONFIGS = {
    "gpt": ModelConfig(n_layer=2, d_model=32, n_head=4, positional="learned", norm_position="pre"),
    "llama": ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=2, positional="rope", activation="swiglu",
                         norm="rmsnorm", bias=False),
    "alibi": ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=1, positional="alibi", activation="relu",
                         norm_position="post"),
    "bert": ModelConfig(arch="encoder", n_layer=2, d_model=32, n_head=4, mask="bidirectional", norm_position="post",
                        type_vocab_size=2, embed_norm=True),
    "nope": ModelConfig(arch="encoder", n_layer=2, d_model=32, n_head=4, mask="bidirectional", positional="none"),
    "enc-dec": ModelConfig(arch="encoder-decoder", n_layer=2, d_model=32, n_head=4, positional="sinusoidal",
                           activation="relu", norm_position="post", embed_scale=True),
}
T, S = 6, 5  # target and source lengths


def scaled_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """Weights N(0, 1/fan_in), embeddings N(0, 1): GPT-2's N(0, 0.02) makes every score ~0 and every change tiny,
    while at this scale a change of order one anywhere moves the logits by order one."""
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            if param.dim() == 2:
                scale = 1.0 if "embed" in name else 1 / math.sqrt(param.shape[1])
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return model


def inputs(cfg: ModelConfig) -> tuple[torch.Tensor, dict]:
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, cfg.vocab_size, (2, T), generator=gen)
    kw = {"src": torch.randint(0, cfg.vocab_size, (2, S), generator=gen)} if cfg.arch == "encoder-decoder" else {}
    return tokens, kw


def template(name: str) -> str:
    """'encoder.blocks.1.attn.q' -> 'blocks.{i}.attn.q': the HOOK_NAMES entry a concrete name belongs to."""
    name = name.removeprefix("encoder.")
    return re.sub(r"^blocks\.\d+\.", "blocks.{i}.", name)


def test_configs_cover_every_hook_name():
    fired = {template(n) for cfg in CONFIGS.values() for n in hook_names(cfg)}
    assert fired == set(HOOK_NAMES)


def perturb(x: torch.Tensor, name: str) -> torch.Tensor:
    """x plus noise as large as x's own spread (at least 1: embed.pos is all zeros for RoPE / ALiBi / none)."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    spread = max(float(x.float().std()), 1.0) if x.numel() > 1 else 1.0
    return x + torch.randn(x.shape, generator=gen).to(x.dtype) * spread


@functools.cache
def family_model(key: str) -> Transformer:
    return scaled_model(CONFIGS[key])  # only ever run, never written to: shared by the cases of one family


@functools.cache
def family_run(key: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    tokens, kw = inputs(CONFIGS[key])
    return family_model(key).run_with_cache(tokens, **kw)


@pytest.mark.parametrize("key", CONFIGS)
def test_hooks_that_hand_back_an_equal_tensor_change_nothing(key):
    tokens, kw = inputs(CONFIGS[key])
    model = family_model(key)
    every = {name: (lambda x, n: x.clone()) for name in hook_names(model.cfg)}
    torch.testing.assert_close(model.run_with_hooks(tokens, every, **kw), family_run(key)[0])


CASES = [(key, name) for key, cfg in CONFIGS.items() for name in hook_names(cfg)]


@pytest.mark.parametrize("key,name", CASES, ids=[f"{k}:{n}" for k, n in CASES])
def test_every_hook_replacement_reaches_the_logits(key, name):
    model = family_model(key)
    tokens, kw = inputs(CONFIGS[key])
    base, plain = family_run(key)
    replaced, cache = model.run_with_cache(tokens, hooks={name: perturb}, **kw)
    torch.testing.assert_close(cache[name], perturb(plain[name], name))  # what is kept is the replacement
    torch.testing.assert_close(model.run_with_hooks(tokens, {name: perturb}, **kw), replaced)
    # The perturbation is of the tensor's own size and these weights pass it on at order one; float32 rounding
    # over two blocks is ~1e-6 of the logits, so a change above 1e-3 of their size cannot be noise.
    change = float((replaced - base).abs().max())
    assert change > 1e-3 * float(base.abs().max()), f"replacing {name} did not reach the logits"


def _one_layer(positional: str = "rope", n_kv_head: int = 2) -> tuple[Transformer, torch.Tensor]:
    cfg = ModelConfig(n_layer=1, d_model=32, n_head=4, n_kv_head=n_kv_head, positional=positional,
                      activation="swiglu", norm="rmsnorm", bias=False)
    model = scaled_model(cfg)
    return model, inputs(cfg)[0]


def _manual_attention_out(model: Transformer, scores: torch.Tensor, v: torch.Tensor):
    """softmax(scores + M) V, then Concat(heads) W^O, written out with the causal mask of the decoder."""
    cfg = model.cfg
    allowed = build_mask("causal", T)
    pattern = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    z = pattern @ repeat_kv(v, cfg.kv_groups)  # (B, nh, T, dh)
    out = model.stack.blocks[0].attn.W_o(z.transpose(1, 2).reshape(z.shape[0], T, cfg.n_head * cfg.d_head))
    return pattern, z, out


@pytest.mark.parametrize("positional", ["rope", "alibi"])
def test_replaced_scores_give_the_pattern_z_and_logits_of_a_manual_computation(positional):
    model, tokens = _one_layer(positional)
    base_logits, base = model.run_with_cache(tokens)
    new_scores = torch.randn(base["blocks.0.attn.scores"].shape, generator=torch.Generator().manual_seed(3)) * 3
    logits, cache = model.run_with_cache(tokens, hooks={"blocks.0.attn.scores": lambda x, n: new_scores})
    pattern, z, out = _manual_attention_out(model, new_scores, base["blocks.0.attn.v"])
    torch.testing.assert_close(cache["blocks.0.attn.scores"], new_scores)
    torch.testing.assert_close(cache["blocks.0.attn.pattern"], pattern)
    torch.testing.assert_close(cache["blocks.0.attn.z"], z)
    torch.testing.assert_close(cache["blocks.0.attn.out"], out)
    assert not torch.allclose(cache["blocks.0.attn.pattern"], base["blocks.0.attn.pattern"], atol=1e-3)
    # The logits are those of the same forward with the manual attention output put in its place.
    torch.testing.assert_close(logits, model.run_with_hooks(tokens, {"blocks.0.attn.out": lambda x, n: out}))
    assert not torch.allclose(logits, base_logits, atol=1e-3)


def test_masked_keys_stay_masked_whatever_the_replaced_scores_say():
    model, tokens = _one_layer()
    huge = lambda x, n: torch.full_like(x, 50.0).triu(1)  # noqa: E731  (every future key scores far above the past)
    _, cache = model.run_with_cache(tokens, hooks={"blocks.0.attn.scores": huge})
    pattern = cache["blocks.0.attn.pattern"]
    assert (pattern.triu(1) == 0).all()
    # Only allowed keys are left and they all score 0: each query spreads evenly over the keys it may see.
    torch.testing.assert_close(pattern, torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
                               .expand(2, 4, T, T))


@pytest.mark.parametrize("positional", ["rope", "alibi"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_replaced_q_k_v_are_the_ones_attention_uses(positional, n_kv_head):
    model, tokens = _one_layer(positional, n_kv_head)
    _, base = model.run_with_cache(tokens)
    q, k, v = (base[f"blocks.0.attn.{s}"] for s in "qkv")
    gen = torch.Generator().manual_seed(11)
    q2, k2, v2 = (torch.randn(t.shape, generator=gen) for t in (q, k, v))
    bias = base["blocks.0.attn.scores"] - q @ repeat_kv(k, 4 // n_kv_head).transpose(-2, -1) / math.sqrt(8)
    for name, new, expected_scores in (
        ("q", q2, q2 @ repeat_kv(k, 4 // n_kv_head).transpose(-2, -1) / math.sqrt(8) + bias),
        ("k", k2, q @ repeat_kv(k2, 4 // n_kv_head).transpose(-2, -1) / math.sqrt(8) + bias),
    ):
        _, cache = model.run_with_cache(tokens, hooks={f"blocks.0.attn.{name}": lambda x, n, new=new: new})
        # bias (zero for RoPE, ALiBi's -slope*distance) is recovered from a difference of values of size ~10, so
        # it carries float32 rounding of ~1e-6 of them
        torch.testing.assert_close(cache["blocks.0.attn.scores"], expected_scores, atol=1e-5, rtol=1e-5)
    _, cache = model.run_with_cache(tokens, hooks={"blocks.0.attn.v": lambda x, n: v2})
    torch.testing.assert_close(cache["blocks.0.attn.pattern"], base["blocks.0.attn.pattern"])
    torch.testing.assert_close(cache["blocks.0.attn.z"], base["blocks.0.attn.pattern"] @ repeat_kv(v2, 4 // n_kv_head))


@pytest.mark.parametrize("positional", ["learned", "rope", "alibi"])
def test_k_v_hooks_with_a_kv_cache_see_the_whole_context_and_the_cache_keeps_the_model_own(positional):
    """The decision documented in HOOK_NAMES: the cache stores the model's own keys and values, and a k / v hook
    sees (and may replace) the whole context at every step. So a hook acts alike with or without the cache and is
    never applied twice to a cached position."""
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=2, positional=positional)
    model = scaled_model(cfg)
    tokens, _ = inputs(cfg)
    weight = torch.linspace(0.5, 2.0, T)  # a different factor for every key position

    def reweigh(x, name):
        return x * weight[: x.shape[2], None]

    hooks = {"blocks.0.attn.k": reweigh, "blocks.1.attn.v": reweigh}
    full = model.run_with_hooks(tokens, hooks)
    cache = KVCache(2)
    model.run_with_hooks(tokens[:, :3], hooks, kv_cache=cache)
    steps = [model.run_with_hooks(tokens[:, t:t + 1], hooks, kv_cache=cache) for t in range(3, T)]
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 3:], atol=1e-5, rtol=1e-5)
    _, own = model.run_with_cache(tokens, names=["blocks.0.attn.k"])
    torch.testing.assert_close(cache.k[0], own["blocks.0.attn.k"], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(full, model.run_with_hooks(tokens, {}), atol=1e-3)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rope", "alibi", "none"])
def test_embed_pos_hook_adds_to_the_input_like_any_positional_vector(positional):
    """embed.pos is zeros for RoPE / ALiBi / none; a hook may still put absolute positions there."""
    cfg = ModelConfig(n_layer=1, d_model=32, n_head=4, positional=positional)
    model = scaled_model(cfg)
    tokens, _ = inputs(cfg)
    _, cache = model.run_with_cache(tokens, names=["embed.pos"])
    if positional in ("rope", "alibi", "none"):
        assert (cache["embed.pos"] == 0).all()
    extra = torch.randn(T, cfg.d_model, generator=torch.Generator().manual_seed(5))
    via_pos = model.run_with_hooks(tokens, {"embed.pos": lambda x, n: x + extra})
    via_tok = model.run_with_hooks(tokens, {"embed.tok": lambda x, n: x + extra})
    torch.testing.assert_close(via_pos, via_tok)
    assert not torch.allclose(via_pos, model.run_with_hooks(tokens, {}), atol=1e-3)


def test_a_hook_that_changes_the_shape_is_refused_with_the_name():
    model, tokens = _one_layer()
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.scores.*\(2, 4, 6, 6\)"):
        model.run_with_hooks(tokens, {"blocks.0.attn.scores": lambda x, n: x[..., :3]})
    with pytest.raises(ValueError, match=r"embed\.tok"):
        model.run_with_hooks(tokens, {"embed.tok": lambda x, n: x[0]})  # would broadcast silently
    with pytest.raises(TypeError, match=r"blocks\.0\.attn\.z"):
        model.run_with_hooks(tokens, {"blocks.0.attn.z": lambda x, n: 0.0})
