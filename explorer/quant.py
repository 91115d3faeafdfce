"""Weight quantization, written to be read: round-to-nearest onto a grid of 2^b levels, one scale per group.

A weight matrix W (rows = output channels, columns = inputs) is cut into groups that share one scale s:

- per tensor: one group, the whole matrix;
- per channel: one group per row (one output channel), the layout torch.quantize_per_channel(axis=0) uses;
- group-wise: each row cut into runs of ``group_size`` consecutive weights (GPTQ/AWQ's g128, GGUF's blocks of 32);
  a last run shorter than ``group_size`` is a group of its own.

Three ways to place the grid on a group with minimum lo and maximum hi (codes q are integers):

- symmetric:    q = clamp(round(w / s), -Q, Q),  w' = s·q,            s = max|w| / Q,  Q = 2^(b-1) - 1
  (the grid is centred on 0 and one of the 2^b codes is left unused, so 2 bits give only -1, 0, 1);
- zero point:   q = clamp(round(w / s) + z, 0, L),  w' = s·(q - z),  s = (hi' - lo') / L,  z = round(-lo' / s),
  L = 2^b - 1, with lo' = min(lo, 0), hi' = max(hi, 0) so that 0 is exactly representable (torch's affine scheme);
- minimum:      q = clamp(round((w - m) / s), 0, L),  w' = s·q + m,    m = lo,  s = (hi - m) / L
  (GGUF's Q4_1 / Q4_K style: the grid starts at the group's own minimum).

Round-to-nearest gives the error bound |w - w'| ≤ s/2 for every weight, half a step of its group's grid: each case
above picks s so that the group's whole range fits the grid, so clamping never moves a weight further than rounding.
Scales (and minimums) are stored in ``scale_dtype`` (float16 by default, as GGUF and GPTQ store them); a scale is
rounded *up* and a minimum *down* to that dtype, so the stored grid still covers the range and the bound still holds
with the stored values.

GGUF's Q4_1 (:func:`quantize_q4_1`) is written out as llama.cpp's ``quantize_row_q4_1_ref`` computes it, byte for
byte: blocks of 32 weights, d = (max - min)/15 and m = min kept in float16, codes from the float32 d and min.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SCHEMES = ("symmetric", "zero_point", "min")
GRANULARITIES = ("tensor", "channel", "group")
BITS = (8, 4, 3, 2)
Q4_1_BLOCK = 32  # weights per Q4_1 block
Q4_1_BLOCK_BYTES = 20  # float16 d, float16 m, 32 four-bit codes packed two per byte
ZERO_POINT_BYTES = 1  # an integer zero point (0..255) is stored in one byte


@dataclass(frozen=True)
class QuantFormat:
    """How a matrix is quantized: ``bits`` per code, the grid's placement (``scheme``), which weights share a
    scale (``granularity``, ``group_size`` for group-wise) and the dtype the scales are stored in."""

    bits: int = 4
    scheme: str = "symmetric"
    granularity: str = "group"
    group_size: int = 32
    scale_dtype: torch.dtype = torch.float16

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES or self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown scheme {self.scheme!r} or granularity {self.granularity!r}")
        if not 2 <= self.bits <= 8 or self.group_size < 1:
            raise ValueError(f"bits must be 2..8 and group_size ≥ 1, got {self.bits}, {self.group_size}")
        if self.scale_dtype not in (torch.float16, torch.float32):
            raise ValueError(f"scales are stored as float16 or float32, not {self.scale_dtype}")

    @property
    def code_range(self) -> tuple[int, int]:
        """The smallest and largest code."""
        if self.scheme == "symmetric":
            top = 2 ** (self.bits - 1) - 1
            return -top, top
        return 0, 2 ** self.bits - 1

    @property
    def scale_bytes(self) -> int:
        return torch.finfo(self.scale_dtype).bits // 8


@dataclass(frozen=True)
class Quantized:
    """A quantized matrix: integer ``codes`` (same shape as the matrix), one ``scale`` per group and, for the
    asymmetric schemes, one ``offset`` per group (the integer zero point z, or the minimum m). Scales and offsets
    have shape (row groups, groups per row): (1, 1) per tensor, (rows, 1) per channel, (rows, ceil(cols/g))
    group-wise; their float32 values are exactly representable in ``fmt.scale_dtype``."""

    fmt: QuantFormat
    codes: torch.Tensor  # int16
    scales: torch.Tensor  # float32
    offsets: torch.Tensor | None  # float32 (whole numbers for a zero point)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    @property
    def nbytes(self) -> int:
        """Bytes to store it: codes packed at ``bits`` each, plus scales and offsets."""
        fmt = self.fmt
        code_bytes = math.ceil(self.codes.numel() * fmt.bits / 8)
        per_offset = {"symmetric": 0, "zero_point": ZERO_POINT_BYTES, "min": fmt.scale_bytes}[fmt.scheme]
        return code_bytes + self.scales.numel() * (fmt.scale_bytes + per_offset)

    def step(self) -> torch.Tensor:
        """Each weight's grid step (its group's scale), shape of the matrix: the error bound is half of it."""
        return _ungroup(self.scales, self.fmt, self.shape)


def quantized_bytes(shape: tuple[int, int], fmt: QuantFormat) -> int:
    """What :attr:`Quantized.nbytes` is for a matrix of ``shape``, without quantizing it."""
    rows, cols = shape
    groups = {"tensor": 1, "channel": rows, "group": rows * math.ceil(cols / fmt.group_size)}[fmt.granularity]
    per_offset = {"symmetric": 0, "zero_point": ZERO_POINT_BYTES, "min": fmt.scale_bytes}[fmt.scheme]
    return math.ceil(rows * cols * fmt.bits / 8) + groups * (fmt.scale_bytes + per_offset)


def _grouped(w: torch.Tensor, fmt: QuantFormat) -> torch.Tensor:
    """(row groups, groups per row, weights per group): a ragged last group is padded with copies of its own last
    weight, which changes neither its minimum nor its maximum."""
    rows, cols = w.shape
    if fmt.granularity == "tensor":
        return w.reshape(1, 1, rows * cols)
    if fmt.granularity == "channel":
        return w.reshape(rows, 1, cols)
    g = fmt.group_size
    pad = -cols % g
    if pad:
        w = torch.cat([w, w[:, -1:].expand(rows, pad)], dim=1)
    return w.reshape(rows, -1, g)


def _ungroup(per_group: torch.Tensor, fmt: QuantFormat, shape: tuple[int, int]) -> torch.Tensor:
    """One value per group -> one value per weight (shape of the matrix)."""
    rows, cols = shape
    if fmt.granularity == "tensor":
        return per_group.reshape(1, 1).expand(rows, cols)
    if fmt.granularity == "channel":
        return per_group.reshape(rows, 1).expand(rows, cols)
    return per_group.repeat_interleave(fmt.group_size, dim=1)[:, :cols]


def _stored(x: torch.Tensor, dtype: torch.dtype, direction: float) -> torch.Tensor:
    """``x`` rounded to ``dtype`` towards ``direction`` (+inf: up, -inf: down), as float32."""
    if dtype == torch.float32:
        return x
    near = x.to(dtype)
    off = (near.float() < x) if direction > 0 else (near.float() > x)
    if off.any():
        near = torch.where(off, torch.nextafter(near, torch.full_like(near, direction)), near)
    return near.float()


def _grid(w: torch.Tensor, fmt: QuantFormat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(codes as floats, grouped like :func:`_grouped`; scales; offsets or None)."""
    if w.dim() != 2:
        raise ValueError(f"quantize takes a matrix (rows, columns), not shape {tuple(w.shape)}")
    blocks = _grouped(w.detach().float(), fmt)
    lo, hi = blocks.amin(dim=-1), blocks.amax(dim=-1)  # (row groups, groups per row)
    qmin, qmax = fmt.code_range
    tiny = torch.finfo(fmt.scale_dtype).tiny  # a group of one repeated value still gets a usable step
    offsets = None
    if fmt.scheme == "symmetric":
        scales = _stored((torch.maximum(hi, -lo) / qmax).clamp(min=tiny), fmt.scale_dtype, math.inf)
        codes = torch.div(blocks, scales[..., None]).round_().clamp_(qmin, qmax)
    elif fmt.scheme == "zero_point":
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
        scales = _stored(((hi - lo) / qmax).clamp(min=tiny), fmt.scale_dtype, math.inf)
        offsets = torch.round(-lo / scales).clamp(qmin, qmax)
        codes = torch.div(blocks, scales[..., None]).round_().add_(offsets[..., None]).clamp_(qmin, qmax)
    else:
        offsets = _stored(lo, fmt.scale_dtype, -math.inf)
        scales = _stored(((hi - offsets) / qmax).clamp(min=tiny), fmt.scale_dtype, math.inf)
        codes = torch.sub(blocks, offsets[..., None]).div_(scales[..., None]).round_().clamp_(qmin, qmax)
    return codes, scales, offsets


def _ungrouped(grouped: torch.Tensor, fmt: QuantFormat, shape: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`_grouped`: (rows, columns), the padding of a ragged last group dropped."""
    rows, cols = shape
    return grouped.reshape(rows, cols) if fmt.granularity == "tensor" else grouped.reshape(rows, -1)[:, :cols]


def _dequantize_grouped(codes: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor | None,
                        scheme: str) -> torch.Tensor:
    """s·q, s·(q - z) or s·q + m, group by group, in place on the float ``codes``."""
    s = scales[..., None]
    if scheme == "symmetric":
        return codes.mul_(s)
    if scheme == "zero_point":
        return codes.sub_(offsets[..., None]).mul_(s)
    return codes.mul_(s).add_(offsets[..., None])


def quantize(w: torch.Tensor, fmt: QuantFormat) -> Quantized:
    """Round-to-nearest quantization of a 2-D float matrix (see the module's formulas)."""
    codes, scales, offsets = _grid(w, fmt)
    codes = _ungrouped(codes, fmt, tuple(w.shape)).to(torch.int16).contiguous()
    return Quantized(fmt, codes, scales, offsets)


def dequantize(q: Quantized) -> torch.Tensor:
    """The float32 matrix the codes stand for: s·q, s·(q - z) or s·q + m."""
    w = _dequantize_grouped(_grouped(q.codes.float(), q.fmt), q.scales, q.offsets, q.fmt.scheme)
    return _ungrouped(w, q.fmt, q.shape)


def fake_quantize(w: torch.Tensor, fmt: "QuantFormat | str") -> torch.Tensor:
    """quantize → dequantize: what the weights become (``fmt`` may be ``"q4_1"`` for GGUF's blocks)."""
    if fmt == "q4_1":
        return dequantize_q4_1(quantize_q4_1(w))
    codes, scales, offsets = _grid(w, fmt)  # the same codes as quantize(), kept as floats: no int16 round trip
    return _ungrouped(_dequantize_grouped(codes, scales, offsets, fmt.scheme), fmt, tuple(w.shape)).contiguous()


def relative_rms_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """‖W - W'‖ / ‖W‖ (Frobenius norms)."""
    # float32 norms: a sum over a million weights is off by ~1e-6 relative, far below any difference shown
    return float(torch.linalg.vector_norm(w - w_hat) / torch.linalg.vector_norm(w).clamp(min=1e-30))


# ---- GGUF Q4_1 -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Q4_1Blocks:
    """A matrix in Q4_1 blocks: each row cut into blocks of 32 weights, each block w = d·q + m with 4-bit codes
    q in 0..15 and d, m stored in float16. Arrays are (rows, blocks per row[, 32])."""

    d: torch.Tensor  # float16
    m: torch.Tensor  # float16
    codes: torch.Tensor  # uint8, 0..15

    @property
    def shape(self) -> tuple[int, int]:
        rows, blocks, size = self.codes.shape
        return rows, blocks * size

    @property
    def nbytes(self) -> int:
        return self.d.numel() * Q4_1_BLOCK_BYTES


def q4_1_bytes(shape: tuple[int, int]) -> int:
    rows, cols = shape
    return rows * (cols // Q4_1_BLOCK) * Q4_1_BLOCK_BYTES


def quantize_q4_1(w: torch.Tensor) -> Q4_1Blocks:
    """llama.cpp's Q4_1: per block of 32, d = (max - min)/15, q = min(15, trunc((w - min)·(1/d) + 0.5)), then d and
    min stored in float16 (the codes come from the float32 values, as ggml computes them)."""
    rows, cols = w.shape
    if cols % Q4_1_BLOCK:
        raise ValueError(f"Q4_1 needs rows of a multiple of {Q4_1_BLOCK} weights, not {cols}")
    blocks = w.detach().float().reshape(rows, cols // Q4_1_BLOCK, Q4_1_BLOCK)
    lo, hi = blocks.amin(dim=-1, keepdim=True), blocks.amax(dim=-1, keepdim=True)
    d = (hi - lo) / 15
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    codes = torch.trunc((blocks - lo) * inv + 0.5).clamp(0, 15).to(torch.uint8)
    return Q4_1Blocks(d[..., 0].half(), lo[..., 0].half(), codes)


def dequantize_q4_1(b: Q4_1Blocks) -> torch.Tensor:
    """w = d·q + m per block, in float32 (ggml's dequantize_row_q4_1)."""
    w = b.d.float()[..., None] * b.codes.float() + b.m.float()[..., None]
    return w.reshape(b.shape)


def q4_1_to_raw(b: Q4_1Blocks) -> np.ndarray:
    """The blocks as GGUF stores them, (rows·blocks, 20) uint8: d, m (float16, little-endian), then 16 bytes whose
    low nibble holds weight j and high nibble weight j + 16."""
    codes = b.codes.reshape(-1, Q4_1_BLOCK).numpy()
    packed = codes[:, :16] | (codes[:, 16:] << 4)
    d = b.d.reshape(-1, 1).numpy().astype("<f2").view(np.uint8)
    m = b.m.reshape(-1, 1).numpy().astype("<f2").view(np.uint8)
    return np.concatenate([d, m, packed.astype(np.uint8)], axis=1)


def q4_1_from_raw(raw: np.ndarray, shape: tuple[int, int]) -> Q4_1Blocks:
    """Read GGUF's Q4_1 bytes (any shape holding rows·blocks·20 bytes) back into blocks of a ``shape`` matrix."""
    rows, cols = shape
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, Q4_1_BLOCK_BYTES)
    if raw.shape[0] != rows * (cols // Q4_1_BLOCK):
        raise ValueError(f"{raw.shape[0]} Q4_1 blocks do not make a {rows} x {cols} matrix")
    d = torch.from_numpy(raw[:, 0:2].copy().view("<f2").astype(np.float16)).reshape(rows, -1)
    m = torch.from_numpy(raw[:, 2:4].copy().view("<f2").astype(np.float16)).reshape(rows, -1)
    packed = raw[:, 4:]
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=1)
    return Q4_1Blocks(d, m, torch.from_numpy(codes).reshape(rows, -1, Q4_1_BLOCK))
