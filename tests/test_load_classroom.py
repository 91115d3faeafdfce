"""bench/load_classroom.py: its arithmetic and verdicts (no server), and one short run of the whole bench."""
import asyncio
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import load_classroom as lc  # noqa: E402

MB = 1 << 20


def test_percentile_interpolates_between_order_statistics():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]  # unsorted on purpose
    assert lc.percentile(values, 0) == 1.0
    assert lc.percentile(values, 50) == 3.0
    assert lc.percentile(values, 100) == 5.0
    assert lc.percentile(values, 95) == pytest.approx(4.8)  # 4 + 0.8 x (5 - 4), as numpy's "linear"
    assert lc.percentile([2.5], 95) == 2.5
    assert math.isnan(lc.percentile([], 50))


def test_one_slow_answer_in_twenty_sets_the_p95():
    # 19 quick slider answers and one 4 s stall: the p95 sits between the two, far above the median
    times = [0.2] * 19 + [4.0]
    assert lc.percentile(times, 50) == pytest.approx(0.2)
    assert lc.percentile(times, 95) == pytest.approx(0.2 + 0.05 * 3.8)


def test_slope_is_the_least_squares_growth_per_round():
    assert lc.slope([100.0, 110.0, 120.0, 130.0]) == pytest.approx(10.0)
    assert lc.slope([7.0, 7.0, 7.0]) == 0.0
    assert lc.slope([5.0, 6.0, 4.0, 5.0]) == pytest.approx(-0.2)  # noise around a level: close to 0
    assert lc.slope([5.0]) == 0.0


def test_rss_is_flat_only_without_steady_growth():
    level = 1600 * MB
    noisy = [level + d * MB for d in (0, 6, -4, 3, -2, 5, -6, 1, 4, -3)]
    leaking = [level + 18 * MB * r for r in range(10)]  # 10 students x 1.8 MB of KV cache kept per round
    assert lc.rss_flat(noisy)
    assert not lc.rss_flat(leaking)
    assert not lc.rss_flat([level])  # one round says nothing


def test_answers_compared_per_prompt_and_against_the_solo_answer():
    solo = {"a": "Paris is the capital.", "b": "Rainbows form when light bends."}
    good = [(0, "a", solo["a"]), (1, "b", solo["b"]), (2, "a", solo["a"])]
    assert lc.answer_problems(good, solo) == []

    # a student's answer carried another student's tokens: it differs from its solo answer and from its twin's
    crossed = [(0, "a", solo["a"]), (1, "b", solo["b"]), (2, "a", "Paris is the Rainbows")]
    problems = lc.answer_problems(crossed, solo)
    assert any(p.startswith("student 2: answer differs") for p in problems)
    assert any("2 different answers to the same prompt 'a'" in p and "[0]" in p and "[2]" in p for p in problems)

    assert lc.answer_problems([(3, "a", None)], solo) == ["student 3: no answer"]
    # without solo answers (the RSS rounds), students with the same prompt are still compared with each other
    assert lc.answer_problems([(0, "a", "x"), (1, "a", "x")], {}) == []
    assert len(lc.answer_problems([(0, "a", "x"), (1, "a", "y")], {})) == 1


def test_caption_templates_become_patterns_that_read_the_count():
    streaming = lc.template_pattern("token {n} of at most {cap} · {tps:.1f} tokens/s", "n")
    assert streaming.search("token 12 of at most 32 · 14.5 tokens/s").group("n") == "12"
    assert streaming.search("Finished after 12 tokens") is None
    finished = lc.template_pattern("Finished after {n:,} tokens: {reason}.", "n")
    assert lc._count(finished, "Finished after 1,024 tokens: the limit.") == 1024
    # the bench reads the app's own catalog: these texts exist and carry the count
    assert lc.STREAMING.pattern and lc.FINISHED.pattern and "(?P<n>" in lc.FINISHED.pattern


def test_goals_pass_and_fail_on_their_thresholds():
    flat = [1600 * MB] * 10
    ok = lc.goals(n=30, problems=0, total_tps=100.0, solo_tps=15.0, ttft_p95=2.5, slider_p95=0.8, rss=flat,
                  cross_talk=[])
    assert [g.ok for g in ok] == [True] * 6
    bad = lc.goals(n=30, problems=1, total_tps=70.0, solo_tps=15.0, ttft_p95=3.2, slider_p95=1.2,
                   rss=[1600 * MB + 20 * MB * r for r in range(10)], cross_talk=["student 2: answer differs"])
    assert [g.ok for g in bad] == [False] * 6
    assert "4.67 x" in bad[1].detail  # 70 / 15
    assert not lc.goals(n=30, problems=0, total_tps=100.0, solo_tps=math.nan, ttft_p95=1.0, slider_p95=0.1,
                        rss=flat, cross_talk=[])[1].ok  # no solo rate measured: no speed-up claimed


def test_quick_and_bounds_of_the_command_line():
    quick = lc.parse_args(["--quick"])
    assert quick.n == [1, 3] and quick.rounds == 3 and quick.round_size == 3
    assert lc.parse_args([]).n == [1, 10, 30]
    with pytest.raises(SystemExit):
        lc.parse_args(["--n", "500"])
    assert not lc.parse_args([]).engine_process  # the app's own engine unless asked
    assert lc.parse_args(["--engine-process", "--engine-threads", "2"]).engine_threads == 2
    assert lc.parse_args(["--engine-process", "--engine-nice", "0"]).engine_nice == 0
    for bad in (["--engine-threads", "2"], ["--engine-process", "--engine-threads", "0"], ["--engine-nice", "5"],
                ["--engine-process", "--engine-nice", "20"]):
        with pytest.raises(SystemExit):
            lc.parse_args(bad)


def test_the_engine_line_says_what_the_engine_did_in_a_phase():
    before = dict(steps=10, decode_seconds=2.0, prefill_seconds=0.5, prefill_tokens=100, prefix_hits=1,
                  prefix_tokens=30, tokens_total=40)
    after = dict(steps=42, decode_seconds=10.0, prefill_seconds=1.5, prefill_tokens=400, prefix_hits=30,
                 prefix_tokens=900, tokens_total=1000)
    line = lc.engine_line(before, after)
    assert "32 decode steps, 30.0 tokens each, 250 ms each" in line
    assert "1.0 s reading 300 prompt tokens; 29 prompts began from a stored one (870 tokens" in line
    assert lc.engine_line(None, after) == ""


@pytest.mark.slow
def test_a_short_class_of_two_runs_end_to_end():
    """The whole bench with 2 students and tight bounds (about 50 s on a busy 2-core machine): every student gets
    a first token and its greedy answer, identical to its solo answer, with no exception and no disconnect."""
    args = lc.parse_args(["--n", "2", "--max-new-tokens", "4", "--probes", "1", "--rounds", "2", "--round-size",
                          "1", "--round-tokens", "2", "--settle-s", "1", "--ttl", "1", "--time-limit-s", "150"])
    # In a thread of its own: the browser tests' Playwright keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        report = pool.submit(asyncio.run, lc.bench(args)).result()
    (phase,) = report.phases
    assert phase.problems() == [] and report.round_problems == [] and report.log_tracebacks == 0
    assert len(phase.ttfts) == 2 and all(0 < t < 60 for t in phase.ttfts)
    assert [s.tokens for s in phase.students] == [4, 4]
    assert all(s.answer and s.answer == report.solo[s.prompt].answer for s in phase.students)
    assert phase.slider_times and report.solo_tps > 0 and phase.total_tps > 0
    assert len(report.rss) == 2 and all(r > 100 * MB for r in report.rss)
    verdicts = {g.name.split(": ", 1)[-1]: g.ok for g in report.goals}
    assert verdicts["no exception shown and no disconnect"]
    assert verdicts["greedy answers identical across students and to their solo answers"]
