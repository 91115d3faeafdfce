"""The quantization tab's library: the quantized copy (the shared model untouched), KL and perplexity against
torch's own functions, greedy decoding against a plain arg-max, the memory table against the bytes of the shipped
GGUF file, the outliers found from the data, the Q4_1 baseline (lossless on SmolLM2), and bad settings."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.labs.inference_quant import (
    CopyCache, QuantSettings, evaluate, greedy, linear_weights, matrix_view, memory_table, outliers,
    predictions, quantized_copy, run_quant, weight_of,
)
from explorer.models.quantization import GGUF_MATRIX_NAMES, gguf_name, gguf_tensor
from explorer.models.tiny import load_tiny
from explorer.quant import QuantFormat, fake_quantize

FOUR_BIT = QuantFormat(4, "symmetric", "group", 32)


@pytest.fixture(scope="module")
def tiny():
    return load_tiny("tiny-llama")


@pytest.fixture(scope="module")
def smollm2():
    from tests.pretrained_models import ours

    return ours("smollm2-135m")


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_the_copy_holds_the_quantized_matrices_and_the_shared_model_is_untouched(tiny):
    before = snapshot(tiny.model)
    q = quantized_copy(tiny.model, FOUR_BIT)
    assert q.model is not tiny.model
    for (layer, matrix, w), error in zip(linear_weights(tiny.model), q.layer_errors):
        expected = fake_quantize(w.float().contiguous(), FOUR_BIT)
        assert torch.equal(weight_of(q.model, layer, matrix), expected)
        assert error > 0  # random weights are never on a 4-bit grid
    # the embedding (also the output layer) and the norms are the shared model's own tensors, only read
    assert q.model.stack.embed.tok.weight.data_ptr() == tiny.model.stack.embed.tok.weight.data_ptr()
    assert q.model.lm_head.weight is q.model.stack.embed.tok.weight
    after = snapshot(tiny.model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_kl_and_perplexity_equal_torch_kl_div_and_cross_entropy(tiny):
    q = quantized_copy(tiny.model, QuantFormat(3, "min", "channel"))
    ids = tiny.encode("quantization keeps a few bits").ids
    p = predictions(tiny.model, q.model, ids, [str(i) for i in ids], False)
    x = torch.tensor([ids])
    with torch.inference_mode():
        ref, quant = tiny.model(x)[0], q.model(x)[0]
    # F.kl_div(input=log q, target=log p, log_target=True) is Σ p (log p − log q), per position
    kl = F.kl_div(F.log_softmax(quant, -1), F.log_softmax(ref, -1), log_target=True, reduction="none").sum(-1)
    # float32 log-softmax over 256 entries: differences of a few ulps of the logits' scale
    np.testing.assert_allclose(p.kl, kl.clamp(min=0).numpy(), rtol=1e-4, atol=1e-6)
    assert p.kl.mean() > 0
    ce_ref = F.cross_entropy(ref[:-1], x[0, 1:])
    ce_quant = F.cross_entropy(quant[:-1], x[0, 1:])
    assert p.perplexity_ref == pytest.approx(float(torch.exp(ce_ref)), rel=1e-5)
    assert p.perplexity_quant == pytest.approx(float(torch.exp(ce_quant)), rel=1e-5)


def test_greedy_with_a_kv_cache_equals_argmax_of_full_forwards(tiny):
    prompt = tiny.encode("The grid").ids
    out = greedy(tiny.model, prompt, 12, eos=())
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(12):
            ids.append(int(tiny.model(torch.tensor([ids]))[0, -1].argmax()))
    assert out == ids[len(prompt):]


def test_the_copy_cache_keeps_at_most_its_capacity(tiny):
    cache = CopyCache(capacity=1)
    first = cache.get(tiny.model, FOUR_BIT)
    assert cache.get(tiny.model, FOUR_BIT) is first
    cache.get(tiny.model, QuantFormat(2, "zero_point", "tensor"))
    assert len(cache) == 1
    assert cache.get(tiny.model, FOUR_BIT) is not first  # evicted, built again


def test_matrix_view_counts_every_weight_and_shows_the_grid(smollm2):
    w = weight_of(smollm2.model, 5, "o")
    view = matrix_view(w, QuantFormat(2, "symmetric", "tensor"), 5, "o")
    assert view.before.sum() == view.after.sum() == w.numel()
    assert view.distinct_after == 3 and np.count_nonzero(view.after) == 3
    assert view.max_error <= view.max_half_step * (1 + 2.0 ** -20)
    assert view.bits_per_weight == pytest.approx(2 + 16 / w.numel())  # one float16 scale for the tensor
    shipped = matrix_view(w, "q4_1", 5, "o")
    assert shipped.rel_rms == 0.0 and np.array_equal(shipped.before, shipped.after)


def test_memory_table_matches_the_bytes_of_the_shipped_file(smollm2):
    model = smollm2.model
    rows = memory_table(model, "q4_1")
    n_params = sum(p.numel() for p in model.parameters())  # the tied output layer counted once
    assert rows[0].total == 4 * n_params and rows[1].total == 2 * n_params
    q4_1 = next(r for r in rows if r.chosen)
    file_linear = sum(gguf_tensor(gguf_name(layer, m)).raw.nbytes for layer in range(30) for m in GGUF_MATRIX_NAMES)
    assert q4_1.linear == file_linear
    assert q4_1.embedding == gguf_tensor("token_embd.weight").raw.nbytes  # Q8_0 in the file
    group4 = memory_table(model, FOUR_BIT)
    chosen = [r for r in group4 if r.chosen]
    assert len(chosen) == 1 and chosen[0].linear * 8 == q4_1.linear * 8 * 4.5 / 5  # 4.5 bits against Q4_1's 5


def test_outliers_are_found_from_the_data_and_per_row_scales_help(smollm2):
    found = outliers(smollm2.model)
    weights = linear_weights(smollm2.model)
    spreads = [float(w.abs().amax(1).max() / w.abs().amax(1).median()) for _, _, w in weights]
    worst = int(np.argmax(spreads))
    assert (found.worst.layer, found.worst.matrix) == weights[worst][:2]
    assert found.worst.spread == pytest.approx(spreads[worst]) and found.worst.spread > found.typical.spread
    e = found.worst.errors
    assert e["tensor"] > e["channel"] > e["group"]  # on SmolLM2's worst matrix each finer scale helps


def test_q4_1_again_is_lossless_on_smollm2(smollm2):
    """The app's weights are the Q4_1 file dequantized: the Q4_1 copy is the same model, so KL is 0, perplexity
    and greedy output identical."""
    copy = quantized_copy(smollm2.model, "q4_1")
    assert not copy.layer_errors.any()
    e = evaluate(smollm2, copy, QuantSettings(max_new_tokens=8))
    assert not e.predictions.kl.any()
    assert e.predictions.perplexity_ref == e.predictions.perplexity_quant
    assert e.greedy.ref_ids == e.greedy.quant_ids and e.greedy.first_difference is None
    assert e.quantized_bytes == sum(gguf_tensor(gguf_name(i, m)).raw.nbytes for i in range(30)
                                    for m in GGUF_MATRIX_NAMES)


def test_bad_settings_fall_back_with_a_sentence(tiny):
    bad = QuantSettings(format="q9", bits=5, granularity="row", group_size=7, layer=99, matrix="W_x", text="  ",
                        prompt=None, max_new_tokens=0)
    shown = run_quant(bad, tiny)
    assert shown.error and shown.result is not None
    assert shown.settings == dataclasses.replace(QuantSettings(), layer=tiny.config.n_layer - 1, max_new_tokens=1)
    for field, name in (("format", "format"), ("bits", "bits"), ("group_size", "group size"), ("matrix", "matrix")):
        shown = run_quant(dataclasses.replace(QuantSettings(), **{field: "nonsense"}), tiny)
        assert str(shown.error).startswith(name) and shown.settings == QuantSettings(), field
