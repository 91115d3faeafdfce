"""Everything the positional-encoding lab shows: the encodings themselves (sinusoidal, learned, RoPE, ALiBi), their
similarity structure, and what they do to the attention of a real sentence.

Implements the course's Positional Encoding section (Vaswani et al. 2017, Sec. 3.5) and the encodings that
replaced it: RoPE (Su et al. 2021, LLaMA's rotate-half layout) and ALiBi (Press et al. 2022). The tables come from
explorer.positional; the attention comes from explorer.model.Transformer.

``run`` computes the section of the encoding the student explores (its controls are checked in one place,
``PositionalSettings.validate``, and a control that cannot be used falls back to its nearest valid value: the
sections are independent, so one bad control changes nothing else). The attention of the sentence under each
encoding depends on fewer settings and is ``attention_patterns``, cached on its own.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..checks import choice, nearest_whole, whole_number
from ..config import POSITIONALS, ModelConfig
from ..i18n import Msg
from ..model import Transformer
from ..positional import alibi_bias, alibi_slopes, apply_rope, rope_cos_sin, rope_inv_freq, sinusoidal
from ..positional_facts import GPT2_POSITION_INIT_STD, AlibiRule, RopeDecayFacts, alibi_rule, rope_decay_facts
from ..models.toy_tokens import MAX_LAB_TOKENS, Tokens, token_vectors
from .outcome import Outcome, run_lab

LAB_D_MODEL = 64  # the small encoder whose attention the lab compares across encodings
LAB_N_HEAD = 4
MAX_POSITIONS = 128
MAX_WIDTH = 512  # of a position table (d_model) and of a RoPE head (d_head)
MAX_ALIBI_HEADS = 64
SEED_MAX = 10_000
ROPE_THETAS = (10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0)
ROPE_ORIGINAL_THETA = 10_000.0  # Su et al.'s θ: its curve is drawn beside any other θ for comparison
ROPE_MAX_DISTANCE = 128
ROPE_MIN_POSITIONS = 8  # the rotation shows at least this many positions, so a short sentence still turns


@dataclass(frozen=True)
class PositionalSettings:
    """The lab's controls: the encoding explored and each section's own controls, and the seed and RoPE base θ
    they share (the seed draws the weights, the token vectors and the learned table)."""

    positional: str = "sinusoidal"  # the encoding explored (ModelConfig's name for it)
    n_pos: int = 32  # rows of the sinusoidal and learned tables
    d_model: int = 64  # their columns
    d_head: int = 64  # RoPE's head width
    pair: int = 0  # the RoPE pair drawn turning
    alibi_heads: int = 8
    shuffle_seed: int = 1
    perm_encoding: str = "none"  # the encoding switched on in the shuffle experiment
    theta: float = 10_000.0
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError with a sentence for the student when a control cannot be used."""
        choice(Msg("positional.name.positional"), self.positional, POSITIONALS)
        whole_number(Msg("positional.name.n_pos"), self.n_pos, 1, MAX_POSITIONS)
        whole_number("d_model", self.d_model, 2, MAX_WIDTH)
        whole_number("d_head", self.d_head, 2, MAX_WIDTH)
        if self.d_head % 2:
            raise ValueError(Msg("positional.error.odd_d_head", d_head=self.d_head))
        whole_number(Msg("positional.name.pair"), self.pair, 0, self.d_head // 2 - 1)
        whole_number("n_head", self.alibi_heads, 1, MAX_ALIBI_HEADS)
        whole_number(Msg("positional.name.shuffle_seed"), self.shuffle_seed, 0, SEED_MAX)
        choice(Msg("positional.name.perm_encoding"), self.perm_encoding, POSITIONALS)
        _check_theta(self.theta)
        whole_number(Msg("positional.name.seed"), self.seed, 0, SEED_MAX)


def _check_theta(theta) -> None:
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta <= 1:
        raise ValueError(Msg("positional.error.theta", got=repr(theta)))


def nearest(settings: PositionalSettings) -> PositionalSettings:
    """Each control at its nearest valid value, the others as they were."""
    default = PositionalSettings()
    d_head = nearest_whole(settings.d_head, 2, MAX_WIDTH, default.d_head)
    d_head += d_head % 2  # the next even width (MAX_WIDTH is even)
    try:
        _check_theta(settings.theta)
        theta = settings.theta
    except ValueError:
        theta = default.theta
    encoding = lambda name: name if name in POSITIONALS else default.positional  # noqa: E731
    return dataclasses.replace(
        settings, positional=encoding(settings.positional), perm_encoding=encoding(settings.perm_encoding),
        n_pos=nearest_whole(settings.n_pos, 1, MAX_POSITIONS, default.n_pos),
        d_model=nearest_whole(settings.d_model, 2, MAX_WIDTH, default.d_model), d_head=d_head,
        pair=nearest_whole(settings.pair, 0, d_head // 2 - 1, default.pair),
        alibi_heads=nearest_whole(settings.alibi_heads, 1, MAX_ALIBI_HEADS, default.alibi_heads),
        shuffle_seed=nearest_whole(settings.shuffle_seed, 0, SEED_MAX, default.shuffle_seed),
        theta=theta, seed=nearest_whole(settings.seed, 0, SEED_MAX, default.seed),
    )


def position_labels(n_pos: int, tokens: Sequence[str] = ()) -> list[str]:
    """'0 今', '1 天', ... for the sentence's positions, plain numbers after it."""
    return [f"{p} {tokens[p]}" if p < len(tokens) else str(p) for p in range(n_pos)]


# ---- the encodings themselves (their sizes are checked by PositionalSettings) -------------------------------------

def sinusoidal_table(n_pos: int, d_model: int) -> np.ndarray:
    """(n_pos, d_model): PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    return sinusoidal(n_pos, d_model).numpy()


def learned_table(n_pos: int, d_model: int, seed: int = 0) -> np.ndarray:
    """(n_pos, d_model): a learned position embedding before training, drawn as GPT-2 drew its position table:
    normal with σ = 0.01 (its token table used σ = 0.02; see explorer.positional_facts for the sources). Training
    is what would give it structure."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n_pos, d_model, generator=gen) * GPT2_POSITION_INIT_STD).numpy()


def cosine_similarity(table: np.ndarray) -> np.ndarray:
    """(P, P): cos of the angle between the position vectors PE(p) and PE(p')."""
    unit = table / np.linalg.norm(table, axis=1, keepdims=True).clip(min=1e-12)
    return unit @ unit.T


@dataclass(frozen=True)
class RopeRotation:
    """Where RoPE moves the 2-D pair (x_i, x_{i+d/2}) of a unit vector at positions 0..n-1."""

    pair: int
    angle_per_position: float  # theta^(-2i/d) radians
    points: np.ndarray  # (n, 2)


def rope_rotation(n_pos: int, d_head: int, pair: int, theta: float = 10_000.0) -> RopeRotation:
    """Rotate the vector with x[pair] = 1 (all else 0) by explorer.positional.apply_rope at each position."""
    x = torch.zeros(n_pos, d_head)
    x[:, pair] = 1.0
    cos, sin = rope_cos_sin(torch.arange(n_pos), d_head, theta)
    rotated = apply_rope(x, cos, sin)  # (n, d)
    points = torch.stack([rotated[:, pair], rotated[:, pair + d_head // 2]], dim=1)
    return RopeRotation(pair, float(rope_inv_freq(d_head, theta)[pair]), points.numpy())


@dataclass(frozen=True)
class RopeDistance:
    """q_m . k_n after RoPE as a function of the relative distance m - n."""

    theta: float
    distance: np.ndarray  # (D,) 0 .. max_distance
    ones: np.ndarray  # q = k = (1, ..., 1), divided by d: the long-term decay of the RoPE paper
    random: np.ndarray  # one random (q, k) pair, divided by d
    offset: int  # the same distances measured again with both positions shifted by this much
    max_offset_change: float  # largest |q.k(shifted) - q.k| : ~0, only m - n matters


@torch.no_grad()
def rope_score_by_distance(d_head: int, theta: float = 10_000.0, max_distance: int = 64, seed: int = 0,
                           offset: int = 37) -> RopeDistance:
    gen = torch.Generator().manual_seed(seed)
    q = torch.stack([torch.ones(d_head), torch.randn(d_head, generator=gen)])  # (2, d)
    k = torch.stack([torch.ones(d_head), torch.randn(d_head, generator=gen)])

    def scores(start: int) -> torch.Tensor:
        m = torch.arange(start, start + max_distance + 1)  # query positions, key at position `start`
        cos_q, sin_q = rope_cos_sin(m, d_head, theta)  # (D, d)
        cos_k, sin_k = rope_cos_sin(torch.tensor([start]), d_head, theta)  # (1, d)
        q_rot = apply_rope(q[:, None, :].double(), cos_q.double(), sin_q.double())  # (2, D, d)
        k_rot = apply_rope(k[:, None, :].double(), cos_k.double(), sin_k.double())  # (2, 1, d)
        return (q_rot * k_rot).sum(-1) / d_head  # (2, D)

    base, shifted = scores(0), scores(offset)
    return RopeDistance(theta, np.arange(max_distance + 1), base[0].numpy(), base[1].numpy(), offset,
                        float((shifted - base).abs().max()))


@dataclass(frozen=True)
class Alibi:
    slopes: np.ndarray  # (n_head,)
    bias: np.ndarray  # (n_head, T, T): -slope * (i - j), -inf above the diagonal (a causal model)
    rule: AlibiRule  # how Press et al. chose these slopes, in words


def alibi(n_head: int, n_tokens: int, causal: bool = True) -> Alibi:
    bias = alibi_bias(n_head, n_tokens, symmetric=not causal)
    if causal:
        future = torch.ones(n_tokens, n_tokens, dtype=torch.bool).triu(1)
        bias = bias.masked_fill(future, float("-inf"))
    bias = bias + 0.0  # turns -0.0 into 0.0
    return Alibi(alibi_slopes(n_head).numpy(), bias.numpy(), alibi_rule(n_head))


# ---- attention of a sentence under each encoding -------------------------------------------------------------------

def encoding_config(positional: str, theta: float = 10_000.0) -> ModelConfig:
    """A one-layer bidirectional encoder (so only the encoding, not a mask, tells positions apart)."""
    return ModelConfig(arch="encoder", n_layer=1, d_model=LAB_D_MODEL, n_head=LAB_N_HEAD, vocab_size=1,
                       max_seq_len=MAX_LAB_TOKENS, positional=positional, rope_theta=float(theta),
                       mask="bidirectional", norm_position="pre")


@torch.no_grad()
def encoding_model(positional: str, seed: int = 0, theta: float = 10_000.0) -> Transformer:
    """explorer's Transformer with weights that do not depend on the encoding: each parameter is drawn from a
    generator seeded by (seed, its name), so the five models differ only in how they see positions.

    Linear weights N(0, 1/fan_in) instead of GPT-2's N(0, 0.02), which would make every head uniform; a learned
    position table N(0, 1/2), the average square of a sinusoidal entry, so both add as much to each token.
    The lab shares the model between sessions (st.cache_resource): it is only ever run, never written to.
    """
    model = Transformer.from_seed(encoding_config(positional, theta), seed).eval().requires_grad_(False)
    for name, param in model.named_parameters():
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        if name.endswith("embed.pos.weight"):
            param.copy_(torch.randn(param.shape, generator=gen) * math.sqrt(0.5))
        elif param.dim() == 2:
            param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param.shape[1]))
    return model


@torch.no_grad()
def attention_patterns(model: Transformer, tokens: Tokens, seed: int = 0) -> np.ndarray:
    """(n_head, T, T) attention weights of the model's only layer on the sentence.

    The model's vocabulary has one entry: each token's embedding is its row of the toy table
    (explorer.models.toy_tokens.token_vectors) and enters through the ``embed.tok`` hook point.
    """
    embeddings = token_vectors(tokens.toy_ids, model.cfg.d_model, seed)[None]  # (1, T, d)
    _, cache = model.run_with_cache(
        torch.zeros(1, len(tokens), dtype=torch.long), names=["blocks.0.attn.pattern"],
        hooks={"embed.tok": lambda x, name: embeddings.to(x.dtype)},
    )
    return cache["blocks.0.attn.pattern"][0].numpy()


def shuffle_order(n: int, seed: int) -> list[int]:
    """A random order of 0..n-1 that is not the identity (when n > 1)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if n > 1 and order == list(range(n)):
        order = order[1:] + order[:1]
    return order


@dataclass(frozen=True)
class PermutationResult:
    """The sentence and a shuffled copy through the same layer.

    ``unshuffled`` is the shuffled sentence's attention with its rows and columns put back in the original order:
    without positional information it equals ``original`` (attention is permutation-equivariant).
    """

    order: tuple[int, ...]  # token a of the shuffled sentence is token order[a] of the original
    labels: tuple[str, ...]
    shuffled_labels: tuple[str, ...]
    original: np.ndarray  # (n_head, T, T)
    shuffled: np.ndarray
    unshuffled: np.ndarray
    max_abs_diff: float


def permutation_experiment(model: Transformer, tokens: Tokens, shuffle_seed: int = 0, seed: int = 0
                           ) -> PermutationResult:
    if len(tokens) < 2:
        raise ValueError(Msg("positional.error.shuffle_one_token"))
    order = shuffle_order(len(tokens), shuffle_seed)
    shuffled_tokens = tokens.permuted(order)
    original = attention_patterns(model, tokens, seed)
    shuffled = attention_patterns(model, shuffled_tokens, seed)
    back = np.argsort(order)  # row a of `shuffled` is original token order[a]
    unshuffled = shuffled[:, back][:, :, back]
    return PermutationResult(tuple(order), tokens.tokens, shuffled_tokens.tokens, original, shuffled, unshuffled,
                             float(np.abs(unshuffled - original).max()))


# ---- the section of the encoding explored ------------------------------------------------------------------------

@dataclass(frozen=True)
class EncodingTable:
    """One table of position vectors and how alike its positions are."""

    positions: tuple[str, ...]  # row labels: '0 今', '1 天', ..., then plain numbers past the sentence
    table: np.ndarray  # (n_pos, d_model)
    similarity: np.ndarray  # (n_pos, n_pos) cosine of every two rows


@dataclass(frozen=True)
class RopeSection:
    rotation: RopeRotation
    positions: tuple[str, ...]  # labels of the rotation's points
    curves: tuple[RopeDistance, ...]  # the chosen θ, then Su et al.'s θ when another was chosen
    decay: RopeDecayFacts  # of the chosen θ's curve


@dataclass(frozen=True)
class PositionalResult:
    """What the section of the encoding explored draws; the fields of the other sections are None."""

    sinusoidal: EncodingTable | None = None  # the sinusoidal section, and the learned one beside its own table
    learned: EncodingTable | None = None
    rope: RopeSection | None = None
    alibi: Alibi | None = None
    permutation: PermutationResult | None = None  # None too when the sentence has a single token


ModelFor = Callable[[str, int, float], Transformer]  # (positional, seed, theta) -> the lab's encoder


def _encoding_table(table: np.ndarray, positions: tuple[str, ...]) -> EncodingTable:
    return EncodingTable(positions, table, cosine_similarity(table))


def explore(tokens: Tokens, settings: PositionalSettings, model: ModelFor = encoding_model) -> PositionalResult:
    """The section of ``settings.positional``; raises ValueError for invalid settings."""
    settings.validate()
    s = settings
    if s.positional in ("sinusoidal", "learned"):
        positions = tuple(position_labels(s.n_pos, tokens.tokens))
        learned = _encoding_table(learned_table(s.n_pos, s.d_model, s.seed), positions) \
            if s.positional == "learned" else None
        return PositionalResult(sinusoidal=_encoding_table(sinusoidal_table(s.n_pos, s.d_model), positions),
                                learned=learned)
    if s.positional == "rope":
        n_rot = max(len(tokens), ROPE_MIN_POSITIONS)
        thetas = dict.fromkeys((s.theta, ROPE_ORIGINAL_THETA))  # once when the chosen θ is the original
        curves = tuple(rope_score_by_distance(s.d_head, t, ROPE_MAX_DISTANCE, s.seed) for t in thetas)
        return PositionalResult(rope=RopeSection(
            rope_rotation(n_rot, s.d_head, s.pair, s.theta), tuple(position_labels(n_rot, tokens.tokens)), curves,
            rope_decay_facts(curves[0], s.theta, s.d_head)))
    if s.positional == "alibi":
        return PositionalResult(alibi=alibi(s.alibi_heads, len(tokens)))
    if len(tokens) < 2:
        return PositionalResult()
    return PositionalResult(permutation=permutation_experiment(model(s.perm_encoding, s.seed, s.theta), tokens,
                                                               s.shuffle_seed, s.seed))


def run(tokens: Tokens, settings: PositionalSettings, model: ModelFor = encoding_model
        ) -> Outcome[PositionalSettings, PositionalResult]:
    """The section of the encoding explored; a control that cannot be used falls back to its nearest valid value.

    ``model`` builds the encoder the shuffle experiment runs: the app passes its cache shared by every session.
    """
    return run_lab(settings, lambda used: explore(tokens, used, model), nearest)

