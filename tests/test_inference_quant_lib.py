"""explorer.quant against its own error bound, against torch's quantized tensors and against the `gguf` package's
reference Q4_1 (on the tensors of the shipped SmolLM2 file)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from explorer.models.quantization import GGUF_MATRIX_NAMES, PERMUTED_ROWS, gguf_name, gguf_tensor
from explorer.quant import (
    BITS, GRANULARITIES, SCHEMES, QuantFormat, dequantize, dequantize_q4_1, fake_quantize, q4_1_from_raw, q4_1_to_raw,
    quantize, quantize_q4_1, quantized_bytes, relative_rms_error,
)

FORMATS = [QuantFormat(bits, scheme, granularity, group_size)
           for bits, scheme, granularity, group_size in itertools.product(BITS, SCHEMES, GRANULARITIES, (32, 48))
           if granularity == "group" or group_size == 32]


def real_matrix(layer: int, matrix: str) -> torch.Tensor:
    """A SmolLM2 weight matrix, float32, read from the shipped file by the gguf package (not by our code)."""
    t = gguf_tensor(gguf_name(layer, matrix))
    return torch.from_numpy(quants.dequantize(t.raw, GGMLQuantizationType.Q4_1).reshape(t.shape).copy())


def assert_within_half_step(w: torch.Tensor, fmt: QuantFormat) -> None:
    q = quantize(w, fmt)
    err = (w - dequantize(q)).abs()
    # s·q is one float32 product (plus one sum for z or m): rounding adds at most a few ulps of the larger of |w| and
    # the step, so 4 ulps (2^-22 relative) of |w| + step covers it whatever the CPU's vector width or thread count
    slack = 2.0 ** -22 * (w.abs() + q.step())
    worst = (err - (q.step() / 2 + slack)).max()
    assert worst <= 0, f"{fmt}: error exceeds half a step by {worst.item():.3g}"


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.bits}b-{f.scheme}-{f.granularity}{f.group_size}")
def test_error_within_half_a_step_on_random_matrices(fmt):
    gen = torch.Generator().manual_seed(fmt.bits * 7 + fmt.group_size)
    w = torch.randn(40, 100, generator=gen) * 0.05  # 100 columns: a ragged last group for both group sizes
    w[3, 17] = 1.5  # an outlier, and a row of one repeated value (a zero range)
    w[5] = 0.25
    assert_within_half_step(w, fmt)


@pytest.mark.parametrize("matrix", ["attn.W_q", "mlp.W_out"])
@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.group_size == 32], ids=lambda f: f"{f.bits}b-{f.scheme}-"
                                                                                       f"{f.granularity}")
def test_error_within_half_a_step_on_smollm2_weights(fmt, matrix):
    assert_within_half_step(real_matrix(7, matrix), fmt)


def test_scales_are_stored_in_float16_and_bits_counted_exactly():
    w = real_matrix(0, "mlp.W_in")  # 1536 x 576
    q = quantize(w, QuantFormat(4, "min", "group", 32))
    assert torch.equal(q.scales.half().float(), q.scales) and torch.equal(q.offsets.half().float(), q.offsets)
    # 4-bit codes plus a float16 scale and a float16 minimum per 32 weights: 4 + 32/32 = 5 bits per weight, as Q4_1
    assert q.nbytes * 8 / w.numel() == 5.0 == quantized_bytes(tuple(w.shape), q.fmt) * 8 / w.numel()
    sym3 = quantize(w, QuantFormat(3, "symmetric", "channel"))
    assert sym3.nbytes == (w.numel() * 3 + 7) // 8 + w.shape[0] * 2 == quantized_bytes(tuple(w.shape), sym3.fmt)


def test_low_bits_leave_only_the_grid():
    w = real_matrix(3, "attn.W_o")
    per_tensor = fake_quantize(w, QuantFormat(2, "symmetric", "tensor"))
    assert len(per_tensor.unique()) == 3  # -s, 0, s: symmetric 2-bit leaves a code unused
    assert len(fake_quantize(w, QuantFormat(3, "zero_point", "tensor")).unique()) <= 8
    group = quantize(w, QuantFormat(2, "min", "group", 32))
    assert set(group.codes.unique().tolist()) <= {0, 1, 2, 3}


def test_symmetric_int8_per_channel_equals_torch_quantize_per_channel():
    w = real_matrix(11, "mlp.W_gate")
    ours = quantize(w, QuantFormat(8, "symmetric", "channel", scale_dtype=torch.float32))
    observer = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
    observer(w)
    scales, zeros = observer.calculate_qparams()
    assert torch.equal(zeros, torch.zeros_like(zeros))
    # the observer divides in its own order: the same scale to a few float32 ulps
    torch.testing.assert_close(ours.scales[:, 0], scales.float(), rtol=4 * 2.0 ** -23, atol=0)
    theirs = torch.quantize_per_channel(w, ours.scales[:, 0].double(), zeros, 0, torch.qint8)
    same = ours.codes == theirs.int_repr().to(torch.int16)
    # torch rounds w·(1/s), we round w/s: they may part only where w/s is within float rounding of a half
    ratio = w / ours.scales
    near_half = ((ratio - ratio.floor()) - 0.5).abs() < 1e-4
    assert bool((same | near_half).all()) and same.float().mean() > 0.999
    torch.testing.assert_close(dequantize(ours)[same], theirs.dequantize()[same], rtol=2.0 ** -23, atol=0)


def test_zero_point_uint8_per_tensor_equals_torch_quantize_per_tensor():
    w = real_matrix(20, "attn.W_v")
    ours = quantize(w, QuantFormat(8, "zero_point", "tensor", scale_dtype=torch.float32))
    observer = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    observer(w)
    scale, zero = observer.calculate_qparams()
    assert int(zero) == int(ours.offsets.item())
    torch.testing.assert_close(ours.scales.reshape(1), scale.float(), rtol=4 * 2.0 ** -23, atol=0)
    theirs = torch.quantize_per_tensor(w, float(ours.scales.item()), int(zero), torch.quint8)
    same = ours.codes == theirs.int_repr().to(torch.int16)
    assert same.float().mean() > 0.999  # the rest are float-rounding ties, as above
    assert (ours.codes - theirs.int_repr().to(torch.int16)).abs().max() <= 1


# ---- GGUF Q4_1 ---------------------------------------------------------------------------------------------------

def shipped_q4_1_names() -> list[str]:
    return [gguf_name(layer, m) for layer in range(30) for m in GGUF_MATRIX_NAMES]


def test_our_q4_1_dequantization_equals_gguf_on_every_shipped_tensor():
    names = shipped_q4_1_names()
    assert len(names) == 210
    for name in names:
        t = gguf_tensor(name)
        assert t.type_name == "Q4_1", name
        ours = dequantize_q4_1(q4_1_from_raw(t.raw, t.shape)).numpy()
        # both compute d·q + m in float32 from the same float16 values: exactly equal
        assert np.array_equal(ours, quants.dequantize(t.raw, GGMLQuantizationType.Q4_1).reshape(t.shape)), name


def test_our_q4_1_quantization_writes_the_bytes_gguf_writes():
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(24, 256, generator=gen) * torch.logspace(-3, 1, 24)[:, None]
    w[2, :32] = 0.5  # a block of one value: d = 0
    theirs = quants.quantize(w.numpy(), GGMLQuantizationType.Q4_1).reshape(-1, 20)
    assert np.array_equal(q4_1_to_raw(quantize_q4_1(w)), theirs)


def test_q4_1_again_reproduces_the_shipped_file_byte_for_byte():
    """The app's float32 weights are the file's Q4_1 dequantized: quantizing them again to Q4_1 (same blocks of 32)
    finds in each block the same minimum (code 0) and maximum (code 15), hence the same d, m and codes."""
    for name in [gguf_name(layer, m) for layer in (0, 29) for m in GGUF_MATRIX_NAMES]:
        t = gguf_tensor(name)
        w = dequantize_q4_1(q4_1_from_raw(t.raw, t.shape))
        assert np.array_equal(q4_1_to_raw(quantize_q4_1(w)), np.asarray(t.raw).reshape(-1, 20)), name
        assert relative_rms_error(w, fake_quantize(w, "q4_1")) == 0.0


def test_q4_1_error_bound_on_random_weights():
    w = torch.randn(16, 128) * 0.1
    b = quantize_q4_1(w)
    d, m = b.d.float()[..., None], b.m.float()[..., None]
    step = d.expand(-1, -1, 32).reshape(w.shape)
    err = (w - dequantize_q4_1(b)).abs()
    # ggml computes the codes from float32 d and min but stores them in float16: on top of half a step, each weight
    # carries the float16 rounding of m and of d times its code (at most 15): 2^-11 relative each
    fp16 = 2.0 ** -11 * (m.abs() + 15 * d).expand(-1, -1, 32).reshape(w.shape)
    assert (err <= step / 2 + fp16 + 1e-7).all()


def test_the_apps_float32_weights_are_the_files_q4_1(smollm2_row_model):
    blocks = smollm2_row_model.model.stack.blocks
    for layer in (0, 15, 29):
        for matrix in GGUF_MATRIX_NAMES:
            module, attr = matrix.split(".")
            app = getattr(getattr(blocks[layer], module), attr).weight
            t = gguf_tensor(gguf_name(layer, matrix))
            ours = dequantize_q4_1(q4_1_from_raw(t.raw, t.shape))
            if matrix in PERMUTED_ROWS:  # the same rows in another order: put both in the order of a row hash
                probe = torch.randn(app.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
                app, ours = (x[torch.argsort(x.double() @ probe)] for x in (app, ours))
            assert torch.equal(app, ours), (layer, matrix)


@pytest.fixture(scope="module")
def smollm2_row_model():
    from tests.pretrained_models import ours

    return ours("smollm2-135m")
