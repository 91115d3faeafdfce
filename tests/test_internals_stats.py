"""The every-head summary of the internals lab (issue 11, part 3: 270 thumbnails made legible): each head's
statistic is what its attention map says, and the summary figure draws every head, in the reader's language."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.labs.internals_facts import HEAD_STATISTICS, attention_entropy, head_statistics
from explorer.viz.internals import head_summary_figure, layer_heads_figure


def _patterns(L=3, H=4, T=6, causal=True, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(L, H, T, T)) * 3
    if causal:
        scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("causal", [True, False])
def test_each_statistic_is_read_off_the_maps(causal):
    p = _patterns(causal=causal)
    L, H, T, _ = p.shape
    stats = head_statistics(p, attention_entropy(p, causal=causal))
    assert set(stats) == set(HEAD_STATISTICS)
    for layer in range(L):
        for head in range(H):
            a = p[layer, head].astype(np.float64)
            first = np.mean([a[i, 0] for i in range(1, T)])
            previous = np.mean([a[i, i - 1] for i in range(1, T)])
            own = np.mean([a[i, i] for i in range(T)])
            # float32 weights averaged in float64 and stored as float32: a few float32 ulps of a number <= 1
            assert stats["first"][layer, head] == pytest.approx(first, abs=1e-6)
            assert stats["previous"][layer, head] == pytest.approx(previous, abs=1e-6)
            assert stats["self"][layer, head] == pytest.approx(own, abs=1e-6)
    # a head that reads only its neighbour and one that reads only the start stand apart
    sharp = np.zeros((1, 2, T, T), np.float32)
    sharp[0, 0, 0, 0] = sharp[0, 1, 0, 0] = 1
    for i in range(1, T):
        sharp[0, 0, i, i - 1] = 1
        sharp[0, 1, i, 0] = 1
    s = head_statistics(sharp, attention_entropy(sharp, causal=True))
    assert s["previous"][0].tolist() == [1, pytest.approx(1 / (T - 1))] and s["first"][0].tolist()[1] == 1


def test_the_summary_draws_every_head_once_and_speaks_the_readers_language():
    p = _patterns(L=5, H=3)
    labels = ["a", "b", "c", "d", "e", "f"]
    entropy = attention_entropy(p, causal=True)
    stats = head_statistics(p, entropy)
    fig = head_summary_figure(stats["previous"], "previous", p, labels, entropy, "zh", selected=(4, 2), causal=True)
    cells, markers = fig.data
    np.testing.assert_array_equal(np.asarray(cells.z), stats["previous"].T)  # heads down, layers across
    assert [tuple(c) for c in markers.customdata] == [(layer, head) for layer in range(5) for head in range(3)]
    assert fig.layout.xaxis.title.text == "层" and "看前一个词元" in markers.hovertext[0]
    assert fig.layout.shapes[0].x0 == 3.5 and fig.layout.shapes[0].y0 == 1.5  # the selected head's frame
    layer = layer_heads_figure(p[4], labels, 4, "en", selected=2)
    assert len(layer.data) == 3 and [a.text for a in layer.layout.annotations] == ["head 0", "head 1",
                                                                                 "head 2 (zoomed in)"]
    np.testing.assert_array_equal(np.nan_to_num(np.asarray(layer.data[1].z, dtype=float)), p[4, 1])
