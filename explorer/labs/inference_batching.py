"""The inference lab's batching tab: how many tokens per second the app's own generation engine gives at batch 1, 2,
4, 8, 16, measured on this machine now, and why decoding one sequence is limited by memory, not arithmetic.

Decoding one token multiplies every weight matrix by one vector: the weights are read from memory once per step
whatever the batch, and the arithmetic (2 flops a weight per sequence) is small beside it. So a step costs about
(bytes of weights) / (memory bandwidth), and a batch of b sequences shares that read: tokens per second grow with b
until the arithmetic catches up. The ceiling at batch 1 is bandwidth / bytes per step (a roofline bound; Williams et
al. 2009), with the bandwidth measured by reading a large tensor.

Usable from a notebook: ``measure_batching(model, tokenizer, BatchingSettings())`` and ``measure_bandwidth()``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..checks import text_box, whole_number
from ..engine import engine_stats
from ..generation import generate, prepare_prompt
from ..i18n import Msg
from ..model import Transformer
from ..sampling import SamplingSettings
from .outcome import Outcome, run_lab

BATCH_SIZES = (1, 2, 4, 8, 16)
MAX_NEW_TOKENS = 12  # per request: with BUDGET_S, the measurement stays within ~20 s on a 2-core server
BUDGET_S = 20.0  # larger batches are skipped once the measurement has taken this long (a loaded server)
MAX_PROMPT_CHARS = 200
DEFAULT_PROMPT = "The most important idea in machine learning is"
BANDWIDTH_BYTES = 1 << 28  # 256 MiB: far beyond any CPU cache, so the sum streams from main memory
BANDWIDTH_REPEATS = 3


@dataclass(frozen=True)
class BatchingSettings:
    """What each request of the measurement decodes: the prompt, and how many new tokens (greedy)."""

    prompt: str = DEFAULT_PROMPT
    new_tokens: int = 6

    def validate(self) -> None:
        text_box(Msg("inference_batching.name.prompt"), self.prompt, MAX_PROMPT_CHARS)
        if not self.prompt.strip():
            raise ValueError(Msg("inference_batching.error.empty_prompt"))
        whole_number(Msg("inference_batching.name.new_tokens"), self.new_tokens, 2, MAX_NEW_TOKENS)


@dataclass(frozen=True)
class BatchPoint:
    """One batch size measured: ``batch`` requests decoded together by the engine."""

    batch: int
    tokens: int  # generated, all requests together
    seconds: float  # from submitting the requests to their last token
    # the engine's decoding steps after the first token, each timed from its start to its last row's pick (Step.
    # seconds): the reader's own pace does not count, and the engine runs ahead of a reader
    decode_seconds: float
    engine_batches: dict[int, int]  # engine steps during the measurement, by the batch size they ran at

    @property
    def decode_tokens(self) -> int:
        """Tokens after each request's first (the first comes with reading the prompt: latency, not speed)."""
        return self.tokens - self.batch

    @property
    def total_tokens_per_s(self) -> float:
        return self.decode_tokens / max(self.decode_seconds, 1e-9)

    @property
    def per_request_tokens_per_s(self) -> float:
        return self.total_tokens_per_s / self.batch


@dataclass(frozen=True)
class BatchingResult:
    settings: BatchingSettings
    points: tuple[BatchPoint, ...]
    prompt_tokens: int
    max_batch: int  # the engine's limit: a larger batch waits in line for slots
    skipped: tuple[int, ...]  # batch sizes not measured: the time budget ran out
    seconds: float  # the whole measurement

    def point(self, batch: int) -> BatchPoint | None:
        return next((p for p in self.points if p.batch == batch), None)

    @property
    def speedup(self) -> float:
        """Total tokens/s at the largest batch over batch 1."""
        return self.points[-1].total_tokens_per_s / self.points[0].total_tokens_per_s


def _batch_sizes_delta(before: dict, after: dict) -> dict[int, int]:
    return {size: after[size] - before.get(size, 0) for size in after if after[size] - before.get(size, 0) > 0}


def measure_batch(model: Transformer, tokenizer, settings: BatchingSettings, batch: int,
                  clock: Callable[[], float] = time.perf_counter) -> BatchPoint:
    """Submit ``batch`` greedy requests to the shared engine at once and read their tokens as they come. Runs
    through explorer.generation.generate, so the engine decodes them as one batch (with whatever other sessions
    send at the same moment: ``engine_batches`` says which batch sizes the steps really ran at)."""
    sampling = SamplingSettings(greedy=True, max_new_tokens=settings.new_tokens, seed=0)
    before = engine_stats(model)["batch_sizes"]
    start = clock()
    runs = [generate(model, tokenizer, settings.prompt, sampling, stop_ids=[], n_candidates=1) for _ in range(batch)]
    try:
        for run in runs:
            run.place()  # joins the engine's line now: every request is in before the first one decodes far
        step_time: dict[int, float] = {}  # step index -> the engine step's time (the slowest row's pick)
        tokens = 0
        live = [iter(run) for run in runs]
        while live:  # round robin: every request's steps are read as the engine produces them
            for stream in list(live):
                try:
                    step = next(stream)
                except StopIteration:
                    live.remove(stream)
                    continue
                tokens += 1
                step_time[step.index] = max(step_time.get(step.index, 0.0), step.seconds)
        end = clock()
    finally:
        for run in runs:
            run.close()
    after = engine_stats(model)["batch_sizes"]
    decode = sum(seconds for index, seconds in step_time.items() if index > 0)
    return BatchPoint(batch, tokens, end - start, decode, _batch_sizes_delta(before, after))


def measure_batching(model: Transformer, tokenizer, settings: BatchingSettings,
                     batch_sizes: Sequence[int] = BATCH_SIZES, budget_s: float = BUDGET_S,
                     clock: Callable[[], float] = time.perf_counter) -> BatchingResult:
    """Tokens per second of the engine at each batch size, one after the other (a warm-up request first, so batch 1
    does not pay for the engine's first start). Once ``budget_s`` has passed, the larger batches are skipped."""
    start = clock()
    measure_batch(model, tokenizer, BatchingSettings(settings.prompt, 2), 1, clock)
    points, skipped = [], []
    for b in batch_sizes:
        if points and clock() - start > budget_s:
            skipped.append(b)
            continue
        points.append(measure_batch(model, tokenizer, settings, b, clock))
    prompt_tokens = len(prepare_prompt(tokenizer, settings.prompt, model.cfg.max_seq_len))
    return BatchingResult(settings, tuple(points), prompt_tokens, engine_stats(model)["max_batch"], tuple(skipped),
                          clock() - start)


def run_batching(settings: BatchingSettings, model: Transformer, tokenizer) -> Outcome[BatchingSettings,
                                                                                     BatchingResult]:
    """The measurement, or the sentence saying why the settings could not be used and the default measured."""
    return run_lab(settings, lambda s: measure_batching(model, tokenizer, s), lambda _: BatchingSettings())


# ---- why decoding is memory-bound ------------------------------------------------------------------------------

@dataclass(frozen=True)
class WeightTraffic:
    """What one decoding step reads: every parameter once (the tied embedding counted once: it is read as the
    output layer; the input side reads one row per token)."""

    n_params: int
    bytes_per_param: int  # of the tensors as the app holds them (float32 here)
    dtype: str

    @property
    def bytes_per_step(self) -> int:
        return self.n_params * self.bytes_per_param


def weight_traffic(model: Transformer) -> WeightTraffic:
    params = list(model.parameters())  # parameters() yields a tied tensor once
    sizes = {p.element_size() for p in params}
    if len(sizes) != 1:
        raise ValueError("mixed parameter dtypes")
    return WeightTraffic(sum(p.numel() for p in params), sizes.pop(), str(params[0].dtype).removeprefix("torch."))


@dataclass(frozen=True)
class Bandwidth:
    nbytes: int  # of the tensor read
    seconds: float  # the fastest of the repeats

    @property
    def bytes_per_s(self) -> float:
        return self.nbytes / self.seconds


def measure_bandwidth(nbytes: int = BANDWIDTH_BYTES, repeats: int = BANDWIDTH_REPEATS,
                      clock: Callable[[], float] = time.perf_counter) -> Bandwidth:
    """Memory read bandwidth, as decoding needs it: the time to sum a tensor far larger than any cache (one add
    per 4 bytes read is nothing to a core, so the reading is what is timed); the best of ``repeats``, after one
    untimed pass that touches every page."""
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    src.sum()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        src.sum()
        best = min(best, clock() - start)
    return Bandwidth(src.numel() * 4, best)


@dataclass(frozen=True)
class Roofline:
    traffic: WeightTraffic
    bandwidth: Bandwidth

    @property
    def step_seconds(self) -> float:
        """The least time one decoding step can take: its weights read at the measured bandwidth."""
        return self.traffic.bytes_per_step / self.bandwidth.bytes_per_s

    def ceiling(self, batch: int = 1) -> float:
        """Tokens per second if reading the weights were all a step cost: batch / step_seconds."""
        return batch / self.step_seconds

    def flops_per_byte(self, batch: int) -> float:
        """Arithmetic intensity of a step: 2 flops per weight per sequence over the bytes of the weights."""
        return 2 * batch / self.traffic.bytes_per_param


def roofline(model: Transformer, bandwidth: Bandwidth | None = None) -> Roofline:
    return Roofline(weight_traffic(model), bandwidth or measure_bandwidth())
