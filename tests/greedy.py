"""Comparing greedy token sequences across two computations that round differently.

Greedy decoding takes the arg-max of the logits at every step. Two computations of the same model (another
weight layout, CPU, thread count, KV cache or not) differ by rounding (tests/numerics.py bounds by how much), so
where the best two logits are closer than twice that drift, either may win, and from there on the two sequences
may rightly part. A test therefore compares sequences exactly only up to the first such near tie, and checks that
both sides picked one of the tied tokens there.

The gaps come from one teacher-forced forward pass over the expected sequence: a third computation, also within
the drift of both, so a gap above twice the drift means both sides must have picked that step's top token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .numerics import logit_drift


@dataclass(frozen=True)
class Margins:
    """For each step of a greedy sequence: the logits that chose it, the top-2 gap, the near-tie threshold."""

    logits: torch.Tensor  # (n_steps, V)
    gaps: torch.Tensor  # (n_steps,) top-1 minus top-2 logit
    tie: torch.Tensor  # (n_steps,) a gap at or below this is a near tie

    @property
    def first_near_tie(self) -> int:
        """Index of the first near-tie step; the number of steps when there is none."""
        ties = (self.gaps <= self.tie).nonzero()
        return int(ties[0]) if len(ties) else len(self.gaps)

    def describe(self, step: int) -> str:
        return f"step {step}: top-2 gap {self.gaps[step].item():.3g} <= near-tie threshold {self.tie[step].item():.3g}"


def teacher_forced_logits(model, prompt_ids: Sequence[int], token_ids: Sequence[int]) -> torch.Tensor:
    """(len(token_ids), V): row t holds the logits that chose token t, from one forward pass over the prompt and
    the tokens before t (an explorer Transformer or a transformers model)."""
    ids = torch.tensor([list(prompt_ids) + list(token_ids)[:-1]], device=getattr(model, "device", "cpu"))
    with torch.inference_mode():
        out = model(ids)
    logits = out.logits if hasattr(out, "logits") else out
    return logits[0, len(prompt_ids) - 1:].float().cpu()


def margins(model, cfg, prompt_ids: Sequence[int], token_ids: Sequence[int], *,
            near_exact_code: bool = False) -> Margins:
    """The margins of ``token_ids`` as ``model`` (config ``cfg``, an explorer ModelConfig) scores them.

    ``near_exact_code``: the computations compared do the same sums in the same order (e.g. ours row-major
    against transformers on the same inputs); by default their sums may be ordered differently."""
    logits = teacher_forced_logits(model, prompt_ids, token_ids)
    top2 = logits.topk(2, dim=-1).values
    return Margins(logits=logits, gaps=top2[:, 0] - top2[:, 1],
                   tie=2 * logit_drift(logits, cfg, near_exact_code=near_exact_code))


def assert_same_greedy(actual: Sequence[int], expected: Sequence[int], m: Margins, *, min_compared: int) -> int:
    """``actual`` equals ``expected`` on every step before the first near tie of ``expected`` (all of it when there
    is none), and at that tie picked one of the tied tokens. Returns the number of steps compared exactly; fails
    when it is below ``min_compared`` (a prompt whose answer ties at once checks nothing: choose another)."""
    actual, expected = list(actual), list(expected)
    assert len(m.gaps) == len(expected), "margins of another sequence"
    n = m.first_near_tie
    assert n >= min_compared, f"only {n} steps before a near tie ({m.describe(n)}): the test would check too little"
    if n == len(expected):
        assert actual == expected, _first_difference(actual, expected, m)
        return n
    assert actual[:n] == expected[:n], _first_difference(actual, expected, m)
    if len(actual) > n:
        row = m.logits[n]
        assert row[actual[n]] >= row.max() - m.tie[n], (
            f"at the near tie ({m.describe(n)}) the token {actual[n]} is not one of the tied ones")
    return n


def assert_no_near_tie(m: Margins, steps: int | None = None) -> None:
    """Every one of the first ``steps`` steps (all by default) had a clear winner: the sequence is the same on
    every CPU and thread count, so a test may assert on its content."""
    n = len(m.gaps) if steps is None else steps
    assert m.first_near_tie >= n, (
        f"greedy {m.describe(m.first_near_tie)}: another CPU may continue differently, so the content of this "
        f"sequence cannot be asserted; choose another prompt")


def _first_difference(actual: list[int], expected: list[int], m: Margins) -> str:
    i = next((i for i, (a, e) in enumerate(zip(actual, expected)) if a != e), min(len(actual), len(expected)))
    gap = f"top-2 gap there {m.gaps[i].item():.3g}, threshold {m.tie[i].item():.3g}" if i < len(m.gaps) else ""
    return f"greedy sequences part at step {i} without a near tie ({gap}): {actual} != {expected}"


def assert_same_argmax(actual_ids: torch.Tensor, logits: torch.Tensor, tie: torch.Tensor | float, what: str) -> None:
    """Each of ``actual_ids`` is the arg-max of its row of ``logits`` (…, V) or, where the best two are within
    ``tie`` (a near tie, see the module doc), one of the tied tokens."""
    logits = logits.detach().float()
    best = logits.max(-1).values
    picked = logits.gather(-1, actual_ids.long().unsqueeze(-1)).squeeze(-1)
    tie = torch.as_tensor(tie, dtype=logits.dtype).expand_as(best)
    ok = picked >= best - tie
    assert bool(ok.all()), (f"{what}: token {actual_ids[~ok].tolist()} where {logits.argmax(-1)[~ok].tolist()} "
                            f"wins by more than {tie[~ok].tolist()}")


# SmolLM2's greedy plain completion of this list counts on (" 5, 6, 7, ...") for all 256 tokens the generation
# lab allows, with no end-of-text token and no near tie (tests/test_generation.py checks both): a run that only a
# Stop can end early, with a known text at every point.
COUNTING_PROMPT = "1, 2, 3, 4,"
COUNTING_ANSWER = ", ".join(str(i) for i in range(5, 70)) + ","  # its 256 tokens, outer spaces stripped
