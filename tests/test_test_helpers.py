"""The comparison helpers the model tests rely on (tests/greedy.py, tests/numerics.py) pass what they should and
fail what they should: a helper that never fails would make every test built on it pass unseen."""
from __future__ import annotations

import pytest
import torch

from .greedy import Margins, assert_no_near_tie, assert_same_argmax, assert_same_greedy
from .numerics import EPS, assert_rows_close, pattern_scale, probs_close


def _margins(rows: list[list[float]], tie: float = 0.01) -> Margins:
    logits = torch.tensor(rows)
    top2 = logits.topk(2, -1).values
    return Margins(logits=logits, gaps=top2[:, 0] - top2[:, 1], tie=torch.full((len(rows),), tie))


# Step 0 picks token 0 clearly, step 1 is a near tie between tokens 1 and 2, step 2 picks token 0 clearly.
STEPS = [[5.0, 1.0, 0.0], [0.0, 3.0, 2.995], [4.0, 0.0, 1.0]]


def test_greedy_sequences_are_equal_up_to_the_first_near_tie():
    m = _margins(STEPS)
    assert m.first_near_tie == 1
    assert assert_same_greedy([0, 1, 0], [0, 1, 0], m, min_compared=1) == 1
    assert_same_greedy([0, 2, 1], [0, 1, 0], m, min_compared=1)  # parted at the tie, on a tied token: fine
    with pytest.raises(AssertionError, match="part at step 0 without a near tie"):
        assert_same_greedy([1, 1, 0], [0, 1, 0], m, min_compared=1)
    with pytest.raises(AssertionError, match="not one of the tied ones"):
        assert_same_greedy([0, 0, 0], [0, 1, 0], m, min_compared=1)
    with pytest.raises(AssertionError, match="would check too little"):
        assert_same_greedy([0, 1, 0], [0, 1, 0], m, min_compared=2)


def test_without_a_near_tie_the_whole_sequence_is_compared():
    m = _margins([STEPS[0], STEPS[2]])
    assert assert_same_greedy([0, 0], [0, 0], m, min_compared=2) == 2
    with pytest.raises(AssertionError, match="part at step 1"):
        assert_same_greedy([0, 2], [0, 0], m, min_compared=1)
    with pytest.raises(AssertionError):
        assert_same_greedy([0, 0, 5], [0, 0], m, min_compared=1)  # ran on where the other stopped
    assert_no_near_tie(m)
    with pytest.raises(AssertionError, match="cannot be asserted"):
        assert_no_near_tie(_margins(STEPS))


def test_argmax_may_differ_only_on_a_near_tie():
    logits = torch.tensor(STEPS)
    assert_same_argmax(torch.tensor([0, 2, 0]), logits, 0.01, "rows")
    with pytest.raises(AssertionError, match="wins by more than"):
        assert_same_argmax(torch.tensor([0, 1, 2]), logits, 0.01, "rows")


def test_rows_are_compared_at_their_own_magnitude():
    expected = torch.tensor([[25_000.0, -3.0], [20.0, 1.0]])
    assert_rows_close(expected + torch.tensor([[1e-3, 1e-3], [0.0, 0.0]]), expected, factor=1)  # 1e-3 < EPS·25000
    with pytest.raises(AssertionError, match=r"at \(1, 0\)"):  # the same 1e-3 on the small row is 400 EPS
        assert_rows_close(expected + torch.tensor([[0.0, 0.0], [1e-3, 0.0]]), expected, factor=100)
    assert_rows_close(expected + torch.tensor([[0.0, 0.0], [1e-3, 0.0]]), expected, factor=500)


def test_pattern_scale_ignores_masked_keys():
    scores = torch.tensor([[2.0, 1e6], [3.0, -4.0]])  # the first query cannot see the second key
    pattern = torch.softmax(scores.masked_fill(torch.tensor([[False, True], [False, False]]), float("-inf")), -1)
    assert pattern_scale(scores, pattern).flatten().tolist() == [4.0, 8.0]


def test_probabilities_move_by_the_factor_their_logits_allow():
    z = torch.tensor([2.0, 1.0, -1.0])
    moved = z + torch.tensor([0.01, -0.01, 0.0])
    assert probs_close(torch.softmax(moved, -1), torch.softmax(z, -1), 0.01)
    assert not probs_close(torch.softmax(moved, -1), torch.softmax(z, -1), 0.001)
    assert probs_close(torch.softmax(z, -1), torch.softmax(z, -1), 0.0)
    assert EPS == 2.0 ** -23

