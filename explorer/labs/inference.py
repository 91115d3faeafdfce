"""The inference lab: what it costs to run a trained model, measured on the SmolLM2 the app serves. One tab at a time
(quantization, KV cache and paging, batching, speculative decoding, perplexity and metrics), each in its own module
``explorer/labs/inference_<tab>.py``; this module holds what every tab shares: the tab chosen, and the facts about
the model every tab measures (the 4-bit GGUF release of SmolLM2-135M-Instruct, dequantized to float32).

Implements the course notes' 推理与部署 section (model compression, efficient inference, KV cache and batching).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..checks import choice
from ..i18n import Msg
from .outcome import Outcome, run_lab

TABS = ("quant", "kvcache", "batching", "speculative", "metrics")  # in the order the course teaches them


@dataclass(frozen=True)
class InferenceSettings:
    """The tab the student opened."""

    tab: str = TABS[0]

    def validate(self) -> None:
        choice(Msg("inference.name.tab"), self.tab, TABS)


@dataclass(frozen=True)
class StoredType:
    """One GGML tensor type of the model file: how many tensors have it and its bits per weight (block scales and
    minimums included)."""

    name: str
    tensors: int
    bits: float


@dataclass(frozen=True)
class ModelFacts:
    """What the SmolLM2 the app runs is, read from its file: the line every tab shows beside its numbers."""

    file: str
    matrices: tuple[StoredType, ...]  # the layer matrices' types (Q4_1 in the shipped file)
    embedding: StoredType  # the token embedding, which is also the output layer
    float_tensors: int  # norm vectors kept in float32
    text: Msg


def model_facts() -> ModelFacts:
    """The facts line, from explorer.models.quantization.smollm2_weights() (the file's header, read once)."""
    from ..models.quantization import smollm2_weights  # reads the GGUF header: only when a page asks

    weights = smollm2_weights()
    stored = lambda kind: StoredType(kind, weights.types[kind], weights.bits[kind])  # noqa: E731
    matrices = tuple(stored(k) for k in weights.types if k not in ("F32", "F16", weights.embedding_type))
    embedding = stored(weights.embedding_type)
    float_tensors = weights.types.get("F32", 0)
    layers = Msg.join([Msg("inference.facts.matrices", n=m.tensors, kind=m.name, bits=m.bits) for m in matrices],
                      sep="; ")
    text = Msg("inference.facts.line", file=weights.file, matrices=layers, embedding=embedding.name,
               embedding_bits=embedding.bits, n_float=float_tensors)
    return ModelFacts(weights.file, matrices, embedding, float_tensors, text)


def run(settings: InferenceSettings) -> Outcome[InferenceSettings, ModelFacts]:
    """The tab to show (an unknown one falls back to the first) and the model's facts line."""
    return run_lab(settings, lambda _: model_facts(), lambda _: InferenceSettings())
