"""Speculative decoding with greedy verification: a cheap draft guesses k tokens, the target model checks all of
them in ONE forward pass, and the output is exactly the target's own greedy text.

Leviathan et al. 2023 / Chen et al. 2023, the greedy case. The target's KV cache holds every confirmed token but
the last one; a round feeds [last, d1, ..., dk] and gets k + 1 rows of logits, g0 ... gk. Row i is the target's
greedy choice after d1 ... di, so d1 ... da are accepted while di+1 == gi, and the target's own ga follows them for
free (the correction at the first mismatch, or a bonus token when all k matched). Rejected tokens' keys and values
are cut off the cache (``truncate_cache``). Every round emits between 1 and k + 1 tokens for one target forward,
and every emitted token is the target's greedy choice after the tokens before it: the same text as plain greedy.

Drafts (all offline):
- ``PromptLookupDraft``: the last n tokens are looked up earlier in the prompt + generated text and what followed
  them there is proposed (Saxena's "prompt lookup decoding", transformers' ``prompt_lookup_num_tokens``, vLLM's
  ngram speculator). Costs nothing; helps when the answer copies from its input (code edits, summaries, lists).
- ``ModelDraft``: a smaller model of the same vocabulary, or the target's own first L layers + its final norm +
  its LM head (early exit, as LayerSkip / self-speculative decoding): a real forward per proposed token, with a KV
  cache of its own that follows the confirmed text.

``expected_tokens_per_forward(alpha, k)`` is the paper's model: with each draft token accepted independently with
probability alpha, a round emits (1 - alpha^(k+1)) / (1 - alpha) tokens on average.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from . import limits
from .generation import prefill_chunks
from .i18n import Msg
from .model import KVCache, Pass, Transformer

MAX_K = 8


class Draft(Protocol):
    """Proposes up to k tokens after ``ids`` (the whole confirmed text); fewer (even none) when it has no guess."""

    name: str

    def propose(self, ids: Sequence[int], k: int) -> list[int]: ...


@dataclass(frozen=True)
class Round:
    """One verification round: what the draft proposed, how much of it the target kept, and the target's own
    token after that. ``emitted`` is what this round added to the text."""

    index: int
    position: int  # the position (prompt included) of the first token this round emits
    proposed: tuple[int, ...]
    accepted: int  # the first ``accepted`` proposed tokens matched the target's greedy choice
    target_token: int  # the target's choice after them: a correction, or a bonus when every proposal matched
    draft_seconds: float
    verify_seconds: float
    finish: str | None = None  # on the last round: "eos", "max_new_tokens" or "context_full"
    cache_tokens: int = 0  # tokens in the target's KV cache after the rejected ones were cut off

    @property
    def emitted(self) -> tuple[int, ...]:
        return self.proposed[:self.accepted] + (self.target_token,)

    @property
    def rejected(self) -> tuple[int, ...]:
        return self.proposed[self.accepted:]

    @property
    def seconds(self) -> float:
        return self.draft_seconds + self.verify_seconds


@dataclass(frozen=True)
class GreedyRun:
    """Plain greedy decoding, one target forward per token: the reference and the baseline speed."""

    tokens: tuple[int, ...]
    seconds: tuple[float, ...]  # per token, each one a 1-token forward (the prompt is read before: prefill)
    gaps: tuple[float, ...]  # per token: the target's top-1 minus top-2 logit (a small gap is a near tie)
    prefill_seconds: float  # reading the prompt but its last token, the same work as a speculative run's prefill
    finish: str

    @property
    def decode_seconds(self) -> float:
        return sum(self.seconds)

    @property
    def forwards(self) -> int:
        return len(self.tokens)

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / max(self.decode_seconds, 1e-9)


@dataclass(frozen=True)
class SpeculativeRun:
    rounds: tuple[Round, ...]
    prefill_seconds: float  # reading the prompt but its last token, as GreedyRun.prefill_seconds
    finish: str

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(t for r in self.rounds for t in r.emitted)

    @property
    def forwards(self) -> int:
        """Target forwards after the prompt was read: one per round."""
        return len(self.rounds)

    @property
    def proposed(self) -> int:
        return sum(len(r.proposed) for r in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rounds)

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted over proposed draft tokens; None when the draft never proposed anything."""
        return self.accepted / self.proposed if self.proposed else None

    @property
    def tokens_per_forward(self) -> float:
        return len(self.tokens) / max(1, self.forwards)

    @property
    def decode_seconds(self) -> float:
        """Drafting and verifying, every round: the time GreedyRun.decode_seconds is compared with."""
        return sum(r.seconds for r in self.rounds)

    @property
    def draft_seconds(self) -> float:
        return sum(r.draft_seconds for r in self.rounds)

    @property
    def verify_seconds(self) -> float:
        return sum(r.verify_seconds for r in self.rounds)

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / max(self.decode_seconds, 1e-9)


def expected_tokens_per_forward(alpha: float, k: int) -> float:
    """Tokens one target forward yields on average when each of k draft tokens is accepted with probability alpha
    (independently, until the first rejection), counting the target's own token: 1 + alpha + ... + alpha^k
    = (1 - alpha^(k+1)) / (1 - alpha) (Leviathan et al. 2023, eq. 1)."""
    if not 0.0 <= alpha <= 1.0 or k < 0:
        raise ValueError("alpha must lie in [0, 1] and k be at least 0.")
    if alpha == 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def truncate_cache(cache: KVCache, length: int) -> None:
    """Keep the keys and values of the first ``length`` tokens only (the rejected draft tokens' are dropped)."""
    if length > cache.length or length < 0:
        raise ValueError(f"Cannot cut a cache of {cache.length} tokens to {length}.")
    for layer in range(len(cache.k)):
        if cache.k[layer] is not None:
            # A view is enough: the next update concatenates it into a fresh tensor.
            cache.k[layer] = cache.k[layer][:, :, :length]
            cache.v[layer] = cache.v[layer][:, :, :length]


def hidden_states(model: Transformer, tokens: torch.Tensor, cache: KVCache | None, n_layers: int | None = None):
    """(1, T, d_model) after the first ``n_layers`` blocks (all by default) and the final norm, reading ``tokens``
    (T,) through ``cache``. With every layer this is the model's own forward (``head=False``); with fewer it is the
    early-exit draft: the same embedding, the first blocks, the same final norm, ready for the same LM head."""
    batch = tokens.view(1, -1)
    if n_layers is None or n_layers == model.cfg.n_layer:
        return model(batch, None, kv_cache=cache, head=False)
    stack = model.stack
    p = Pass.build(model.cfg, batch, None, mask=model.cfg.mask, kv_cache=cache)
    x = stack.embed(batch, p)
    for block in stack.blocks[:n_layers]:
        x = block(x, p)
    return x if stack.ln_final is None else stack.ln_final(x)


def _prefill(model: Transformer, ids: torch.Tensor, cache: KVCache, n_layers: int | None = None) -> None:
    # In chunks, as explorer.generation reads a long prompt: explicit attention never holds heads x T x T at once.
    for piece in ids.split(prefill_chunks(model.cfg, ids.shape[0], limits.PREFILL_CHUNK_TOKENS)):
        hidden_states(model, piece, cache, n_layers)


class PromptLookupDraft:
    """Proposes what followed the latest earlier occurrence of the text's last n tokens (n from ``max_ngram`` down
    to ``min_ngram``: a longer match is a better guess). The latest occurrence, because a text that repeats itself
    tends to repeat its most recent part."""

    name = "prompt_lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError("1 <= min_ngram <= max_ngram")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, ids: Sequence[int], k: int) -> list[int]:
        ids = list(ids)
        n_ids = len(ids)
        for n in range(min(self.max_ngram, n_ids - 1), self.min_ngram - 1, -1):
            tail = ids[-n:]
            # start positions of earlier occurrences, latest first; the tail itself (start n_ids - n) is skipped
            for start in range(n_ids - n - 1, -1, -1):
                if ids[start:start + n] == tail:
                    follow = ids[start + n:start + n + k]
                    if follow:
                        return follow
        return []


class ModelDraft:
    """Greedy proposals of a model of the target's vocabulary, or of the target's first ``n_layers`` layers (early
    exit). It keeps a KV cache of the tokens it has read and, at each call, cuts it back to where it agrees with the
    confirmed text (its rejected guesses go) and reads only what is new."""

    def __init__(self, model: Transformer, n_layers: int | None = None, name: str = "model"):
        self.model, self.n_layers, self.name = model, n_layers, name
        self.cache = KVCache(model.cfg.n_layer)
        self.read: list[int] = []  # the tokens whose keys and values the cache holds, in order

    def propose(self, ids: Sequence[int], k: int) -> list[int]:
        ids = list(ids)
        cfg = self.model.cfg
        if k < 1 or len(ids) >= cfg.max_seq_len:  # a draft with a shorter context than the target's stops guessing
            return []
        keep = 0
        for a, b in zip(self.read, ids[:-1]):  # at least the last token is read again, for its logits
            if a != b:
                break
            keep += 1
        truncate_cache(self.cache, keep)
        self.read = self.read[:keep]
        device = self.model.device
        fresh = torch.tensor(ids[keep:], dtype=torch.long, device=device)
        out: list[int] = []
        with torch.inference_mode():
            if fresh.shape[0] > 1:
                _prefill(self.model, fresh[:-1], self.cache, self.n_layers)
                self.read += ids[keep:-1]
                fresh = fresh[-1:]
            for _ in range(k):
                if len(self.read) + 1 > cfg.max_seq_len:
                    break
                hidden = hidden_states(self.model, fresh, self.cache, self.n_layers)
                self.read.append(int(fresh[0]))
                token = int(self.model.lm_head(hidden[0, -1]).argmax())
                out.append(token)
                fresh = torch.tensor([token], dtype=torch.long, device=device)
        return out


def _finish(n_new: int, max_new_tokens: int, last: int, stop_ids: frozenset[int], length: int,
            max_seq_len: int) -> str | None:
    if last in stop_ids:
        return "eos"
    if n_new >= max_new_tokens:
        return "max_new_tokens"
    if length >= max_seq_len:
        return "context_full"
    return None


def _check(model: Transformer, prompt_ids: Sequence[int], max_new_tokens: int) -> None:
    if model.cfg.arch != "decoder" or model.cfg.mask != "causal":
        raise ValueError(Msg("inference_speculative.lib.not_causal"))
    if not prompt_ids:
        raise ValueError(Msg("generation.prompt_check.no_tokens"))
    if len(prompt_ids) >= model.cfg.max_seq_len:
        raise ValueError(Msg("generation.prompt_check.over_context", n=len(prompt_ids),
                             max_seq_len=model.cfg.max_seq_len))
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1.")


def greedy_decode(model: Transformer, prompt_ids: Sequence[int], max_new_tokens: int,
                  stop_ids: Sequence[int] = ()) -> GreedyRun:
    """Plain greedy decoding with a KV cache, one token per forward, timed per token: the same forward code as
    ``speculative_decode`` (explorer.generation's loop also builds a Step's candidates and labels per token, work
    that would make the baseline look slower than it is)."""
    _check(model, prompt_ids, max_new_tokens)
    stop = frozenset(int(i) for i in stop_ids)
    device, cfg = model.device, model.cfg
    cache = KVCache(cfg.n_layer)
    ids = list(prompt_ids)
    prefill_seconds = _timed_prefill(model, ids, cache)
    tokens, seconds, gaps = [], [], []
    fresh = torch.tensor(ids[-1:], dtype=torch.long, device=device)
    finish = None
    while finish is None:
        start = time.perf_counter()
        with torch.inference_mode():
            logits = model.lm_head(hidden_states(model, fresh, cache)[0, -1]).float()
            token = int(logits.argmax())  # reading the token waits for the device, as a real step does
        seconds.append(time.perf_counter() - start)
        top2 = logits.topk(2).values
        gaps.append(float(top2[0] - top2[1]))
        tokens.append(token)
        ids.append(token)
        fresh = torch.tensor([token], dtype=torch.long, device=device)
        finish = _finish(len(tokens), max_new_tokens, token, stop, len(ids), cfg.max_seq_len)
    return GreedyRun(tuple(tokens), tuple(seconds), tuple(gaps), prefill_seconds, finish)


def _timed_prefill(model: Transformer, ids: list[int], cache: KVCache) -> float:
    """Read every token of ``ids`` but the last into ``cache``; the seconds it took."""
    start = time.perf_counter()
    if len(ids) > 1:
        with torch.inference_mode():
            _prefill(model, torch.tensor(ids[:-1], dtype=torch.long, device=model.device), cache)
    return time.perf_counter() - start


def speculative_decode(model: Transformer, prompt_ids: Sequence[int], draft: Draft, k: int, max_new_tokens: int,
                       stop_ids: Sequence[int] = ()):
    """Yield one Round per target forward until ``max_new_tokens`` tokens, a stop token or a full context.

    The tokens emitted are the target's greedy choices (each one the arg-max of the target's logits after the
    tokens before it); only the rounding of a (k + 1)-token forward differs from a 1-token one, so plain greedy
    may differ only where its best two logits are within rounding of each other (a near tie)."""
    _check(model, prompt_ids, max_new_tokens)
    if not isinstance(k, int) or not 0 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 0 to {MAX_K}.")
    stop = frozenset(int(i) for i in stop_ids)
    device, cfg = model.device, model.cfg
    cache = KVCache(cfg.n_layer)  # holds every confirmed token but the last
    ids = list(prompt_ids)
    _timed_prefill(model, ids, cache)
    n_new, index = 0, 0
    while True:
        # Never propose past the budget or the context: a round emits up to k + 1 tokens, as plain greedy would.
        room = min(k, max_new_tokens - n_new - 1, cfg.max_seq_len - len(ids) - 1)
        start = time.perf_counter()
        proposed = draft.propose(ids, room)[:room] if room > 0 else []
        draft_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            fed = torch.tensor([ids[-1]] + proposed, dtype=torch.long, device=device)
            choice = model.lm_head(hidden_states(model, fed, cache)[0]).argmax(-1).tolist()  # len(proposed) + 1
        accepted = 0
        while accepted < len(proposed) and proposed[accepted] == choice[accepted]:
            accepted += 1
        # A stop token among the accepted ones ends the text where plain greedy would have stopped: the proposals
        # after it were never needed (neither accepted nor rejected).
        hit = next((i for i, t in enumerate(proposed[:accepted]) if t in stop), None)
        if hit is not None:
            proposed, accepted = proposed[:hit], hit
        round_ = Round(index=index, position=len(ids), proposed=tuple(proposed), accepted=accepted,
                       target_token=choice[accepted], draft_seconds=draft_seconds, verify_seconds=0.0)
        truncate_cache(cache, len(ids) + len(round_.emitted) - 1)
        verify_seconds = time.perf_counter() - start
        ids += round_.emitted
        n_new += len(round_.emitted)
        finish = _finish(n_new, max_new_tokens, ids[-1], stop, len(ids), cfg.max_seq_len)
        yield dataclasses.replace(round_, verify_seconds=verify_seconds, finish=finish, cache_tokens=cache.length)
        if finish is not None:
            return
        index += 1


def run_speculative_decode(model: Transformer, prompt_ids: Sequence[int], draft: Draft, k: int, max_new_tokens: int,
                           stop_ids: Sequence[int] = ()) -> SpeculativeRun:
    """``speculative_decode`` to the end, as one record (its prefill: the time outside the rounds)."""
    start = time.perf_counter()
    rounds = tuple(speculative_decode(model, prompt_ids, draft, k, max_new_tokens, stop_ids))
    total = time.perf_counter() - start
    return SpeculativeRun(rounds=rounds, prefill_seconds=max(0.0, total - sum(r.seconds for r in rounds)),
                          finish=rounds[-1].finish or "max_new_tokens")


def vocabularies_match(a, b, vocab_a: int, vocab_b: int) -> Msg | None:
    """None when two tokenizers give every id the same bytes (a draft's tokens then mean the target's tokens);
    otherwise the reason, for the student. ``a``/``b`` are ModelTokenizers, ``vocab_*`` the models' vocab sizes."""
    if vocab_a != vocab_b:
        return Msg("inference_speculative.lib.vocab_size", target=vocab_a, draft=vocab_b)
    ids = list(range(vocab_a))
    if a.token_bytes(ids) != b.token_bytes(ids):
        return Msg("inference_speculative.lib.vocab_tokens", n=vocab_a)
    return None


def speedup_bound(alpha: float, k: int, draft_cost: float) -> float:
    """The speedup model of Leviathan et al. (Theorem 3.8): tokens per round over a round's cost in target
    forwards, with a draft forward costing ``draft_cost`` of a target forward (0 for prompt lookup) and a
    (k + 1)-token verification counted as one forward (memory-bound decoding)."""
    return expected_tokens_per_forward(alpha, k) / (1.0 + k * draft_cost)
