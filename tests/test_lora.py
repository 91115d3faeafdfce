"""explorer/lora.py against peft's LoRA on transformers' LlamaForCausalLM holding the same SmolLM2 weights: the same
A and B give the same logits, the same trainable-parameter counts; merging B·A into W gives the adapter's outputs;
the shared base model is never written to."""
from __future__ import annotations

import pytest
import torch

from explorer.config import ModelConfig
from explorer.lora import TARGETS, LoraLinear, lora_model, lora_param_count, projection_shape
from explorer.model import Transformer
from explorer.sizing import count_params
from tests.numerics import EPS, assert_rows_close, near_exact, reordered, row_scale, widest_sum

PROMPT = "LoRA trains two small matrices per projection instead of the whole weight."


@pytest.fixture(scope="module")
def smol():
    from tests.pretrained_models import ours

    # row-major, as transformers stores its weights: both codes then do the same sums in the same order
    return ours("smollm2-135m", "row")


def _random_b_(lm, seed: int, std: float = 0.02) -> None:
    """B starts at zero (the adapted model is then the base model exactly): give it values, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lm.layers.values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * std)


def _peft_with_our_weights(hf, lm, dropout: float):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lm.r, lora_alpha=lm.alpha, lora_dropout=dropout,
                        target_modules=[TARGETS[t][2] for t in lm.targets])
    peft_model = get_peft_model(hf, config).eval()
    modules = dict(peft_model.named_modules())
    with torch.no_grad():
        for name, layer in lm.layers.items():
            i, part, attr = name.split(".")[1], name.split(".")[2], name.split(".")[3]
            hf_part = "self_attn" if part == "attn" else "mlp"
            target = next(t for t, spec in TARGETS.items() if spec[1] == attr)
            prefix = f"base_model.model.model.layers.{i}.{hf_part}.{TARGETS[target][2]}"
            modules[f"{prefix}.lora_A.default"].weight.copy_(layer.lora_A)
            modules[f"{prefix}.lora_B.default"].weight.copy_(layer.lora_B)
    return peft_model


@pytest.mark.slow
@pytest.mark.parametrize("targets,r,alpha,dropout", [
    (("q", "v"), 8, 16.0, 0.0),
    (("q", "k", "v", "o", "gate", "up", "down"), 4, 32.0, 0.1),  # dropout is off in eval mode, in both
])
def test_same_a_and_b_give_peft_logits_and_counts(smol, targets, r, alpha, dropout):
    from tests.hf_reference import hf_causal_lm

    ids = torch.tensor([smol.tokenizer.encode(PROMPT)])
    lm = lora_model(smol.model, targets, r=r, alpha=alpha, dropout=dropout, seed=3)
    _random_b_(lm, seed=4)
    peft_model = _peft_with_our_weights(hf_causal_lm(smol.source), lm, dropout)

    trainable, total = peft_model.get_nb_trainable_parameters()
    assert lm.trainable == trainable == lora_param_count(smol.config, targets, r)
    assert lm.total == total == count_params(smol.config).total + trainable

    with torch.no_grad():
        ours = lm.model.eval()(ids)
        theirs = peft_model(input_ids=ids).logits
        base = smol.model(ids)
    # Same arithmetic in both codes (our row-major SmolLM2 and transformers' eager LLaMA are bit-identical, see
    # tests/numerics.py; peft's B(A x)·s is ours, F.linear for F.linear): a few roundings per layer.
    assert_rows_close(ours, theirs, near_exact(smol.config.n_layer + 1), "logits vs peft")
    # ... and the adapter moves the logits by far more than that tolerance: the comparison would see a wrong A, B,
    # scaling or target
    moved = (ours - base).abs().amax(-1, keepdim=True) / (EPS * row_scale(base))
    assert bool((moved > 10 * near_exact(smol.config.n_layer + 1)).all()), moved.flatten().tolist()


@pytest.mark.slow
def test_merging_b_a_into_w_gives_the_adapter_outputs_and_unmerging_restores_it(smol):
    ids = torch.tensor([smol.tokenizer.encode(PROMPT)])
    lm = lora_model(smol.model, ("q", "k", "v", "o", "gate", "up", "down"), r=8, alpha=16.0, seed=5)
    _random_b_(lm, seed=6)
    with torch.no_grad():
        adapter = lm.model(ids)
        lm.merge()
        merged = lm.model(ids)
        assert all(layer.merged for layer in lm.layers.values())
        lm.unmerge()
        again = lm.model(ids)
    # (W + ΔW) x and W x + ΔW x are the same sums grouped differently: each dot product of K terms rounds
    # differently by about sqrt(K)·EPS of its magnitude, and the difference rides the residual through every block
    assert_rows_close(merged, adapter, reordered(smol.config.n_layer + 1, widest_sum(smol.config)), "merged")
    assert torch.equal(again, adapter)  # unmerge puts back the very W: nothing is rounded on the way back


@pytest.mark.slow
def test_the_shared_base_model_is_never_written(smol):
    ids = torch.tensor([smol.tokenizer.encode(PROMPT)])
    params = dict(smol.model.named_parameters())
    before = {n: (p.data_ptr(), p.requires_grad, p.detach().clone()) for n, p in params.items()
              if n.endswith("W_q.weight") or n.endswith("W_out.weight")}
    with torch.no_grad():
        logits_before = smol.model(ids)
    lm = lora_model(smol.model, ("q", "down"), r=2, alpha=4.0)
    _random_b_(lm, seed=7)
    loss = lm.model(ids)[0, -1].logsumexp(-1)
    loss.backward()
    lm.merge()
    # nothing of the base got a gradient, and the only trainable tensors are A and B
    assert all(p.grad is None for p in smol.model.parameters())
    assert {id(p) for p in lm.model.parameters() if p.requires_grad} == {id(p) for p in lm.parameters()}
    for name, (ptr, flag, values) in before.items():
        p = params[name]
        assert p.data_ptr() == ptr and p.requires_grad == flag and torch.equal(p.detach(), values), name
    with torch.no_grad():
        assert torch.equal(smol.model(ids), logits_before)
    # the view shares the base's storage (no private copy of 135M numbers): only merged layers got new tensors
    view_embed = lm.model.stack.embed.tok.weight
    assert view_embed.data_ptr() == smol.model.stack.embed.tok.weight.data_ptr()
    assert lm.model.lm_head.weight is view_embed  # still tied


def tiny_config(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(n_layer=2, d_model=32, n_head=4, n_kv_head=2, d_ff=48, vocab_size=50,
                                 activation="swiglu", norm="rmsnorm", positional="rope", bias=False), **kw})


def test_zero_b_starts_as_the_base_model_exactly():
    base = Transformer.from_seed(tiny_config(), 0).eval()
    lm = lora_model(base, tuple(TARGETS), r=4, alpha=8.0)
    ids = torch.arange(10)[None]
    with torch.no_grad():
        assert torch.equal(lm.model(ids), base(ids))  # W x + (x A^T) 0^T = W x, bit for bit


def test_counts_follow_the_sizing_formulas():
    cfg = tiny_config()
    parts = {"q": "self-attn W_Q", "k": "self-attn W_K", "v": "self-attn W_V", "o": "self-attn W_O",
             "gate": "FFN W_gate", "up": "FFN W_up", "down": "FFN W_down"}
    breakdown = count_params(cfg)
    for target, part in parts.items():
        d_in, d_out = projection_shape(cfg, target)
        assert d_in * d_out * cfg.n_layer == breakdown.part(part)  # the sizing lab's W shapes, bias-free
    lm = lora_model(Transformer.from_seed(cfg, 0), ("k", "up"), r=3, alpha=3.0)
    assert lm.trainable == lora_param_count(cfg, ("k", "up"), 3) == cfg.n_layer * 3 * (32 + 16 + 32 + 48)


def test_a_is_kaiming_uniform_as_nn_linear_and_b_zero():
    torch.manual_seed(0)
    layer = LoraLinear(torch.nn.Linear(400, 30, bias=False), r=16, alpha=16.0)
    bound = 1 / 400 ** 0.5  # kaiming_uniform(a=√5) of fan_in 400: U(-1/√fan_in, 1/√fan_in)
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.9 * bound
    assert not layer.lora_B.any()


def test_bad_targets_are_refused():
    with pytest.raises(ValueError):
        lora_model(Transformer.from_seed(tiny_config(activation="gelu"), 0), ("gate",))
    with pytest.raises(ValueError):
        lora_model(Transformer.from_seed(tiny_config(), 0), ("qq",))
