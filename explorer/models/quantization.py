"""What the SmolLM2 the app runs really is: the 4-bit GGUF release of SmolLM2-135M-Instruct, dequantized.

The package ships ``SmolLM2-135M-Instruct.Q4_1.gguf``, not the original 16-bit safetensors. transformers turns it
into float32 once (explorer.models.pretrained), so the app computes in float32 with the values the 4-bit file encodes:
each Q4_1 block of 32 weights holds 4-bit codes q with one scale d and one minimum m, w = d·q + m. The pages say
so with :func:`smollm2_weights`, whose numbers are read from the file itself.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# explorer's name of a block's weight matrix -> GGUF's (llama.cpp's) name for it in block i
GGUF_MATRIX_NAMES = {"attn.W_q": "attn_q", "attn.W_k": "attn_k", "attn.W_v": "attn_v", "attn.W_o": "attn_output",
                     "mlp.W_gate": "ffn_gate", "mlp.W_in": "ffn_up", "mlp.W_out": "ffn_down"}
# llama.cpp's converter interleaves the rows of W_q and W_k for its RoPE; transformers puts them back on loading, so
# these two matrices hold the file's rows in another order (each row, and so each block of 32, is unchanged)
PERMUTED_ROWS = ("attn.W_q", "attn.W_k")


@dataclass(frozen=True)
class QuantizedWeights:
    file: str
    types: dict[str, int]  # GGML tensor type -> how many tensors of the file have it
    embedding_type: str  # the token embedding's type (it is also the tied output layer)
    bits: dict[str, float]  # bits per weight of each type, block scales and minimums included
    note: str  # the sentence the pages show


@lru_cache(maxsize=1)
def smollm2_weights() -> QuantizedWeights:
    from gguf import GGML_QUANT_SIZES, GGUFReader

    from .pretrained import smollm2_gguf

    path = smollm2_gguf()
    tensors = GGUFReader(str(path)).tensors  # reads the header only; the data stays memory-mapped
    kinds = {t.tensor_type for t in tensors}
    types = dict(Counter(t.tensor_type.name for t in tensors))
    bits = {k.name: 8 * GGML_QUANT_SIZES[k][1] / GGML_QUANT_SIZES[k][0] for k in kinds}
    embedding = next(t.tensor_type.name for t in tensors if t.name == "token_embd.weight")
    matrices = [k for k in types if k not in ("F32", "F16", embedding)]
    stored = "; ".join(f"{types[k]} layer matrices as {k} ({bits[k]:g} bits per weight: blocks of 32 weights, "
                       "each weight one of 16 levels between the block's own minimum and maximum)" for k in matrices)
    note = (f"SmolLM2-135M-Instruct runs from its 4-bit release ({path.name}), not from the original 16-bit weights: "
            f"{stored}; the token embedding, which is also the output layer, as {embedding} ({bits[embedding]:g} "
            f"bits); the {types.get('F32', 0)} norm vectors in float32. The app dequantizes them to float32 once and "
            "computes in float32, but every weight keeps its 4-bit rounding, so its probabilities can differ "
            "slightly from those of the original model.")
    return QuantizedWeights(path.name, types, embedding, bits, note)


@dataclass(frozen=True)
class GgufTensor:
    """One tensor of the shipped file, as stored: its GGML type, its shape as (rows, columns) and its raw blocks."""

    name: str
    type_name: str  # "Q4_1", "Q8_0", "F32"
    shape: tuple[int, ...]  # rows first, as torch has it (GGUF lists the dimensions the other way round)
    raw: np.ndarray  # uint8 blocks (memory-mapped: read-only) or float32 values


def gguf_name(layer: int, matrix: str) -> str:
    """'blk.3.ffn_down.weight' for layer 3's ``mlp.W_out``."""
    return f"blk.{layer}.{GGUF_MATRIX_NAMES[matrix]}.weight"


@lru_cache(maxsize=1)
def _reader():
    from gguf import GGUFReader

    from .pretrained import smollm2_gguf

    return GGUFReader(str(smollm2_gguf()))  # the data stays memory-mapped: a tensor is read when it is used


def gguf_tensor(name: str) -> GgufTensor:
    """The tensor ``name`` of SmolLM2's GGUF file."""
    for t in _reader().tensors:
        if t.name == name:
            shape = tuple(int(n) for n in reversed(t.shape.tolist()))
            return GgufTensor(t.name, t.tensor_type.name, shape, t.data)
    raise KeyError(f"{name} is not a tensor of {smollm2_weights().file}")
