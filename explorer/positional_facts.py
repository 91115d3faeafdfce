"""What the positional-encoding lab says about each encoding, computed from the encodings themselves.

GPT-2's initialisation comes from OpenAI's code (github.com/openai/gpt-2, src/model.py): ``wpe`` is drawn with
``tf.random_normal_initializer(stddev=0.01)`` and ``wte`` with ``stddev=0.02``. transformers does not copy that
detail: ``GPT2PreTrainedModel._init_weights`` leaves ``nn.Embedding`` to ``PreTrainedModel._init_weights``, which
draws every embedding, ``wpe`` included, from N(0, initializer_range = 0.02).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .i18n import Msg

GPT2_POSITION_INIT_STD = 0.01
GPT2_TOKEN_INIT_STD = 0.02


# ---- ALiBi ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlibiRule:
    """Press et al.'s slopes for ``n_head`` heads: m_h = 2^(-exponents[h])."""

    n_head: int
    power: int  # the largest power of two <= n_head
    exponents: tuple[float, ...]
    geometric: bool
    text: Msg  # one caption for the page
    title: Msg  # the slopes chart's title


def _exponents_power_of_two(n: int) -> list[float]:
    return [8 * h / n for h in range(1, n + 1)]  # m_h = 2^(-8h/n), h = 1..n


def _powers(exponents) -> str:
    shown = [f"2^−{e:g}" for e in exponents]
    return ", ".join(shown) if len(shown) <= 4 else f"{shown[0]}, {shown[1]}, …, {shown[-1]}"


def alibi_rule(n_head: int) -> AlibiRule:
    """The slope rule of Press et al. 2022 (Section 3 and their reference get_slopes) for any head count.

    Only for a power of two is it m_h = 2^(−8h/n), a geometric sequence. Otherwise the paper takes the slopes of
    the largest power of two p below n, then every other slope of 2p heads (2^(−8h/2p) for odd h) until n slopes.
    """
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ValueError(Msg("positional.facts.alibi_bad_heads", got=repr(n_head)))
    p = 2 ** math.floor(math.log2(n_head))
    base = _exponents_power_of_two(p)
    if n_head == 1:
        return AlibiRule(1, 1, (8.0,), True, Msg("positional.facts.alibi_one"),
                         Msg("positional.facts.alibi_one_title"))
    if p == n_head:
        ratio = 2 ** (-8 / n_head)
        text = Msg("positional.facts.alibi_power", n=n_head, powers=_powers(base), ratio=ratio)
        return AlibiRule(n_head, p, tuple(base), True, text, Msg("positional.facts.alibi_power_title", ratio=ratio))
    extra = _exponents_power_of_two(2 * p)[0::2][: n_head - p]
    odd = ", ".join(str(2 * i + 1) for i in range(len(extra)))
    text = Msg("positional.facts.alibi_other", n=n_head, p=p, powers=_powers(base), p2=2 * p, odd=odd,
               extra=_powers(extra))
    return AlibiRule(n_head, p, tuple(base + extra), False, text,
                     Msg("positional.facts.alibi_other_title", p=p, n_extra=len(extra), p2=2 * p))


# ---- RoPE's long-term decay -------------------------------------------------------------------------------------

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class RopeDecayFacts:
    """How far the q = k = 1 score of RoPE really falls with distance, on the distances the page draws."""

    theta: float
    d_head: int
    max_distance: int
    ordered_fraction: float  # of all pairs of distances, how often the farther one scores lower (0.5 = no trend)
    first_negative: int | None  # the first distance whose score is below zero, None if none is
    first_zero_many_pairs: float  # e^(-γ)·θ: where the score first reaches zero when d_head is large
    decays: bool
    text: Msg


def rope_decay_facts(curve, theta: float, d_head: int) -> RopeDecayFacts:
    """Facts of an ``explorer.labs.positional.RopeDistance`` curve: does the score fall with distance, and until
    where.

    With q = k = 1 the score is the mean of cos(m·θ_i) over the d/2 pairs, whose log-frequencies are evenly spaced
    over [−ln θ, 0]. For many pairs that mean tends to (Ci(m) − Ci(m/θ)) / ln θ (Ci the cosine integral), which
    first reaches zero where Ci(m/θ) ≈ γ + ln(m/θ) ≈ 0, i.e. m ≈ e^(−γ)·θ ≈ 0.56·θ: the long-term decay of Su et
    al. (2021, Section 3.4.3) holds for distances well below θ, and a small θ loses it within a few positions.

    "Decays" below means the score stays positive over every distance drawn and, of every two distances, the
    farther one scores lower at least 3 times in 4 (an oscillating score gives about 1 in 2, a coin flip).
    """
    s = np.asarray(curve.ones, dtype=np.float64)
    dist = np.asarray(curve.distance)
    i, j = np.triu_indices(len(s), 1)
    ordered = float((s[j] < s[i]).mean())
    negative = np.flatnonzero(s < 0)
    first_negative = int(dist[negative[0]]) if negative.size else None
    zero = math.exp(-EULER_GAMMA) * theta
    decays = first_negative is None and ordered >= 0.75
    far = int(dist[-1])
    # one sentence per case, not pieces joined: Chinese joins sentences without the space English needs
    if first_negative is not None:
        text = Msg("positional.facts.rope_turns_negative", theta=theta, d_head=d_head, far=far, ordered=ordered,
                   first=first_negative, zero=zero)
    else:
        text = Msg("positional.facts.rope_stays_positive", theta=theta, d_head=d_head, far=far, ordered=ordered,
                   zero=zero)
    return RopeDecayFacts(theta, d_head, int(dist[-1]), ordered, first_negative, zero, decays, text)
