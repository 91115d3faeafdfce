"""The batching tab's library: the measurement goes through the shared engine (its counters show the batch sizes
asked for), counts what it should, respects its time budget, and the memory-bound arithmetic is the parameter count
times the bytes per parameter over a bandwidth. No timing is asserted: the server is shared and noisy."""
import pytest

from explorer.engine import engine_stats
from explorer.labs.inference_batching import (BatchingSettings, Bandwidth, Roofline, WeightTraffic,
                                              measure_bandwidth, measure_batching, roofline, run_batching,
                                              weight_traffic)
from explorer.models.tiny import load_tiny
from explorer.presets import REAL_MODELS
from explorer.sizing import count_params
from tests.pretrained_models import ours


class FakeClock:
    """A clock that moves 1 s per reading: a budget of 0 s is spent after the first batch size."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_measurement_runs_on_the_engine_at_each_batch_size():
    tiny = load_tiny("tiny-llama")  # a model of its own: its engine's counters start at zero
    settings = BatchingSettings("hello there", 4)
    result = measure_batching(tiny.model, tiny.tokenizer, settings, batch_sizes=(1, 2, 4))
    assert [p.batch for p in result.points] == [1, 2, 4] and result.skipped == ()
    for p in result.points:
        assert p.tokens == p.batch * 4 and p.decode_tokens == p.batch * 3
        assert p.batch in p.engine_batches, p.engine_batches  # the engine really decoded them together
        assert p.decode_seconds > 0 and p.seconds >= p.decode_seconds
        assert p.per_request_tokens_per_s == pytest.approx(p.total_tokens_per_s / p.batch)
    stats = engine_stats(tiny.model)["batch_sizes"]
    assert {1, 2, 4} <= set(stats)
    assert result.prompt_tokens == len("hello there".encode())  # bytes as tokens
    assert result.speedup == result.points[-1].total_tokens_per_s / result.points[0].total_tokens_per_s


def test_the_budget_skips_the_larger_batches():
    tiny = load_tiny("tiny-llama")
    result = measure_batching(tiny.model, tiny.tokenizer, BatchingSettings("hi", 2), batch_sizes=(1, 2, 4),
                              budget_s=0.0, clock=FakeClock())
    assert [p.batch for p in result.points] == [1] and result.skipped == (2, 4)


def test_bad_settings_are_named_and_the_default_is_measured():
    tiny = load_tiny("tiny-llama")
    with pytest.raises(ValueError):
        BatchingSettings("   ", 4).validate()
    with pytest.raises(ValueError):
        BatchingSettings("hi", 99).validate()
    shown = run_batching(BatchingSettings("", 4), tiny.model, tiny.tokenizer)
    assert shown.error and shown.settings == BatchingSettings() and shown.result is not None


def test_bytes_per_step_is_parameters_times_bytes():
    tiny = load_tiny("tiny-llama")
    traffic = weight_traffic(tiny.model)
    assert traffic.bytes_per_param == 4 and traffic.dtype == "float32"
    assert traffic.n_params == count_params(tiny.config).total  # tied embedding counted once, as sizing does
    assert traffic.bytes_per_step == traffic.n_params * 4


def test_smollm2_reads_its_parameter_count_in_float32_per_step():
    traffic = weight_traffic(ours("smollm2-135m").model)
    assert traffic.n_params == count_params(REAL_MODELS["SmolLM2-135M"].cfg).total
    assert traffic.bytes_per_step == traffic.n_params * 4


def test_roofline_arithmetic():
    roof = Roofline(WeightTraffic(1_000, 4, "float32"), Bandwidth(8_000, 2.0))
    assert roof.bandwidth.bytes_per_s == 4_000
    assert roof.step_seconds == 1.0 and roof.ceiling(1) == 1.0 and roof.ceiling(16) == 16.0
    assert roof.flops_per_byte(1) == 0.5 and roof.flops_per_byte(16) == 8.0
    measured = measure_bandwidth(nbytes=1 << 20, repeats=2)
    assert measured.nbytes == 1 << 20 and measured.seconds > 0
    tiny = load_tiny("tiny-llama")
    # 1 / (bytes / bandwidth) against bandwidth / bytes: two float64 divisions, a few ulps apart at most
    assert roofline(tiny.model, measured).ceiling(1) == pytest.approx(
        measured.bytes_per_s / weight_traffic(tiny.model).bytes_per_step, rel=1e-12)
