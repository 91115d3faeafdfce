"""Causal language modelling, live: the model continues a prompt one token at a time and shows every choice.

The course's CLM example ("今天天气" -> "今天天气很" -> "今天天气很好"): at each step the model reads the text so far,
scores every token of its vocabulary, the sampling settings (``explorer.sampling``) reshape those scores into a
distribution, one token is picked and appended, and the loop starts again.

``generate(model, tokenizer, prompt, settings)`` returns a :class:`Generation`, an iterator of :class:`Step`: the
chosen token and its probability, the top candidates, the entropy, the step's time and, when asked, the newest
token's attention over the context. Stop consuming it and generation stops. With ``use_cache=True`` the keys and
values of past tokens are kept in an ``explorer.model.KVCache`` so each step only runs the newest token through
the model; without it every step re-reads the whole text. A long text is read in chunks of
``limits.PREFILL_CHUNK_TOKENS`` through the cache, so explicit attention never holds (heads x T x T) scores at once.

With the KV cache, runs are decoded by the shared batched engine of their model (explorer.engine): every
session's run, any caller's thread, one forward per step for all of them; each run keeps its own cache row, random
generator and settings, so its tokens are those it would get alone. ``Generation.place()`` says where it waits in
the engine's line. Without the cache a run is decoded alone, in the caller's thread (see ``generate``).

A run is stepped by one thread at a time (a lock), and ``close()`` may come from any thread: a script run that
Streamlit superseded can still be inside a step when the next one starts a new run.

Everything per run (KV cache row, random generator, token lists) belongs to that run, never to the model, so one
shared model serves many concurrent generations.
"""
from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from . import limits
from .config import ModelConfig
from .i18n import Msg
from .engine import Engine, Request, check_ids, engine_for, pick_token
from .model import KVCache, RunContext, Transformer
from .prefix_cache import common_prefix
from .models import ModelTokenizer
from .sampling import SamplingSettings, entropy_bits
from .models.token_labels import next_token_labels, sequence_labels

FINISH_REASONS = {reason: Msg(f"generation.finish.{reason}")
                  for reason in ("eos", "max_new_tokens", "context_full")}


_LABEL_CONTEXT = 8  # tokens before a new one that can hold the start of its character (4 UTF-8 bytes at most)


@dataclass(frozen=True)
class Prompt:
    """The prompt as the model reads it: token ids and one readable label per token, and the text it was read from
    (what the student typed, before any chat template)."""

    ids: tuple[int, ...]
    labels: tuple[str, ...]
    chat: bool
    text: str

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Candidate:
    token_id: int
    label: str
    prob: float  # after the sampling settings: the distribution the token was actually picked from
    model_prob: float  # the model's own softmax, before any setting


@dataclass(frozen=True)
class Step:
    """One generated token and everything about how it was chosen."""

    index: int  # 0 for the first new token
    position: int  # its position in the whole sequence (prompt included)
    token_id: int
    label: str  # the token alone, readable (line breaks and spaces made visible)
    delta: str  # the text this step adds to the output ('' while a multi-byte character is still incomplete)
    prob: float  # its probability after the settings
    model_prob: float  # its probability under the model alone
    candidates: tuple[Candidate, ...]  # most likely first (after the settings); the chosen one is always included
    n_kept: int  # how many tokens of the vocabulary the settings left in play
    entropy: float  # bits, of the distribution the token was picked from
    model_entropy: float  # bits, of the model's own distribution
    seconds: float  # wall time of the step: forward pass, processing and the pick
    tokens_read: int  # tokens run through the model this step (the prompt, 1 with a KV cache, or everything)
    # (n_layer, n_head, position) in float16: the query at position-1 over the context. A run keeps one per step,
    # n_layer x n_head x (prompt + generated) numbers each, so half precision halves a session's largest part;
    # its relative rounding (2^-11) is far below what a heatmap colour or a 3-decimal hover can show.
    attention_rows: np.ndarray | None
    finish: str | None  # on the last step: a key of FINISH_REASONS

    @property
    def attention(self) -> np.ndarray | None:
        """(n_layer, n_head, position) float32 attention weights of the query that picked this token."""
        return None if self.attention_rows is None else self.attention_rows.astype(np.float32)


def prepare_prompt(tokenizer: ModelTokenizer, prompt: str | Sequence[int], max_seq_len: int, *, chat: bool = False,
                   max_prompt_tokens: int | None = limits.GENERATION_MAX_PROMPT_TOKENS) -> Prompt:
    """Tokenize and check a prompt. Plain mode continues the text as it is; chat mode wraps it in the model's chat
    template (the format an instruction-tuned model was fine-tuned on) and asks for the assistant's answer (a
    tokenizer without a template refuses ``chat_ids`` with a sentence).

    A prompt longer than ``max_prompt_tokens`` is refused with a sentence (None: only the context bounds it)."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(Msg("generation.prompt_check.empty"))
        text = prompt
        ids = tokenizer.chat_ids(prompt) if chat else tokenizer.encode(prompt, add_special_tokens=False)
        if not ids:
            raise ValueError(Msg("generation.prompt_check.no_tokens"))
    else:
        ids = [int(i) for i in prompt]
        if not ids:
            raise ValueError(Msg("generation.prompt_check.no_tokens"))
        text = tokenizer.decode(ids, skip_special_tokens=False)
    if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
        raise ValueError(limits.prompt_too_long(len(ids), max_prompt_tokens))
    if len(ids) >= max_seq_len:
        raise ValueError(Msg("generation.prompt_check.over_context", n=len(ids), max_seq_len=max_seq_len))
    return Prompt(ids=tuple(ids), labels=tuple(sequence_labels(tokenizer, ids)), chat=chat, text=text)


class RunView:
    """What a page reads from a run, whichever decoder wrote its ``steps`` (this module's Generation, or
    explorer.serving.remote's RemoteGeneration): its text, token ids and readable labels. Needs ``steps``,
    ``prompt``, ``tokenizer``, ``_lock`` (held while a step is computed) and ``_closed`` (an Event)."""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a step in progress (in another thread) to finish, so that ``steps``
        can be read as a whole. True when no step is being computed."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def steps_ready(self) -> int:
        """How many further steps are computed already and wait to be read (0 for a decoder that computes a step
        when it is asked for one)."""
        return 0

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def text(self) -> str:
        return "".join(s.delta for s in self.steps)

    def sequence_labels(self) -> list[str]:
        """One label per token of the prompt and the generated text, pieces of a character named after it."""
        return sequence_labels(self.tokenizer, list(self.prompt.ids) + self.token_ids)

    def generated_labels(self) -> list[str]:
        return self.sequence_labels()[len(self.prompt):]

    def context_labels(self, step: Step) -> list[str]:
        """Labels of the tokens ``step``'s attention looks at: the prompt and every token generated before it."""
        return self.sequence_labels()[:step.position]


class Generation(RunView):
    """An iterator of Steps for one run. Owns its KV cache and its random generator; nothing is shared.

    ``settings.seed`` is filled in when it was None, so every run can be repeated exactly. One thread computes a
    step at a time (a second caller of ``next`` waits for the step in progress, then gets the following one);
    ``close()`` is safe from any thread at any moment.
    """

    def __init__(self, model: Transformer, tokenizer: ModelTokenizer, prompt: Prompt, settings: SamplingSettings, *,
                 use_cache: bool, attention: bool, n_candidates: int, stop_ids: Sequence[int],
                 prefill_chunk: int = limits.PREFILL_CHUNK_TOKENS, engine: Engine | None = None,
                 labels: bool = True):
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.labels = labels
        if settings.seed is None and not settings.greedy:
            settings = dataclasses.replace(settings, seed=secrets.randbits(62))
        self.settings = settings
        self.use_cache, self.attention, self.n_candidates = use_cache, attention, n_candidates
        self.prefill_chunk = prefill_chunk
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.steps: list[Step] = []
        self.finish: str | None = None
        self._shown: list[int] = []  # generated ids that belong in the text (not the end-of-text token)
        self._printed = 0  # characters of that text already handed out in deltas
        self._engine, self._request = engine, None
        self._iter = self._run() if engine is None else self._served()
        self._lock = threading.Lock()  # held while a step is computed
        self._closed = threading.Event()
        self._join_lock = threading.Lock()

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> Step:
        with self._lock:
            if self._closed.is_set():
                self._iter.close()  # nobody else is inside it: we hold the lock
                raise StopIteration
            return next(self._iter)

    def place(self) -> int:
        """0 while this run is decoding (or done, or decoded alone); n >= 1: it is n-th in the engine's line for a
        slot. Asking joins the line, as the first step does: a page can show the place before the first token."""
        if self._engine is None or self._closed.is_set():
            return 0
        return self._engine.place(self._join())

    def steps_ready(self) -> int:
        request = self._request
        return 0 if request is None else len(request.out)  # the engine decodes a few steps ahead of its reader

    def _join(self) -> Request:
        with self._join_lock:
            if self._request is None:
                self._request = Request(self.prompt.ids, self.settings, attention=self.attention,
                                        stop_ids=self.stop_ids, prefill_chunk=self.prefill_chunk,
                                        device=self.model.device)
                # A run dropped without close() (a closed tab's session) leaves the engine at its next step.
                weakref.finalize(self, self._engine.cancel, self._request)
                self._engine.submit(self._request)
            return self._request

    def close(self) -> None:
        """Stop the run: no step starts after this. Safe from any thread, even while another one is computing a
        step (that step finishes and is kept; a generator cannot be closed while it runs)."""
        self._closed.set()
        if self._request is not None:
            self._engine.cancel(self._request)  # its slot goes to the next in line at the engine's next step
        if self._lock.acquire(blocking=False):
            try:
                self._iter.close()
            finally:
                self._lock.release()

    def _run(self) -> Iterator[Step]:
        model, cfg = self.model, self.model.cfg
        device = model.device
        rng = None
        if not self.settings.greedy:
            rng = torch.Generator(device=device)
            rng.manual_seed(self.settings.seed)
        cache = KVCache(cfg.n_layer) if self.use_cache else None
        ids = torch.tensor(self.prompt.ids, dtype=torch.long, device=device)  # (T,) the whole text so far
        fresh = ids  # what the next forward has to read
        for index in range(self.settings.max_new_tokens):
            start = time.perf_counter()
            with torch.inference_mode():
                logits, attn = _forward_last(model, fresh if cache is not None else ids, cache, self.attention,
                                             chunk=self.prefill_chunk)
                step_ids, probs, model_probs = self._pick(logits, ids, rng)
            token = int(step_ids)
            seconds = time.perf_counter() - start

            position = ids.shape[0]
            finish = None
            if token in self.stop_ids:
                finish = "eos"
            elif index + 1 == self.settings.max_new_tokens:
                finish = "max_new_tokens"
            elif position + 1 >= cfg.max_seq_len:
                finish = "context_full"
            tokens_read = fresh.shape[0] if cache is not None else ids.shape[0]
            context = ids[-_LABEL_CONTEXT:].tolist()  # enough to name the character a partial token completes
            ids = torch.cat([ids, step_ids.view(1)])
            fresh = step_ids.view(1)
            step = self._make_step(index, position, token, probs, model_probs, context, seconds, tokens_read,
                                   None if attn is None else attn.numpy(), finish)
            yield step
            if finish is not None:
                return

    def _served(self) -> Iterator[Step]:
        """The steps of this run as the shared engine of its model decodes them (explorer.engine)."""
        request = self._join()
        try:
            for index in range(self.settings.max_new_tokens):
                pick = self._engine.take(request)
                if pick is None:  # closed
                    return
                context = (list(self.prompt.ids) + self.token_ids)[-_LABEL_CONTEXT:]
                yield self._make_step(index, pick.position, pick.token, pick.probs, pick.model_probs, context,
                                      pick.seconds, pick.tokens_read, pick.attention, pick.finish)
                if pick.finish is not None:
                    return
        finally:  # a caller that stops iterating (or an error) leaves the engine at its next step
            self._engine.cancel(request)

    def _make_step(self, index: int, position: int, token: int, probs: torch.Tensor, model_probs: torch.Tensor,
                   context: list[int], seconds: float, tokens_read: int, attention_rows: np.ndarray | None,
                   finish: str | None) -> Step:
        """The Step of one picked token (the same for a run decoded alone and one served by the engine); it is
        recorded in ``steps``."""
        delta = ""
        if token not in self.stop_ids:
            self._shown.append(token)
        text = self.tokenizer.decode(self._shown, skip_special_tokens=True)
        # Byte-level tokens can end in the middle of a character: hold it back until it is complete.
        if finish is not None or not text.endswith("\ufffd"):
            delta, self._printed = text[self._printed:], len(text)
        model_entropy = float(entropy_bits(model_probs))
        step = Step(
            index=index, position=position, token_id=token,
            label=next_token_labels(self.tokenizer, context, [token])[0] if self.labels else "",
            delta=delta, prob=float(probs[token]), model_prob=float(model_probs[token]),
            candidates=self._candidates(probs, model_probs, token, context), n_kept=int((probs > 0).sum()),
            entropy=float(entropy_bits(probs)) if probs is not model_probs else model_entropy,
            model_entropy=model_entropy,
            seconds=seconds, tokens_read=tokens_read, attention_rows=attention_rows, finish=finish,
        )
        self.steps.append(step)
        if finish is not None:
            self.finish = finish
        return step

    def _pick(self, logits: torch.Tensor, context: torch.Tensor, rng: torch.Generator | None):
        token, probs, model_probs = pick_token(self.settings, logits, context, rng)
        return torch.tensor(token, device=context.device), probs, model_probs

    def _candidates(self, probs: torch.Tensor, model_probs: torch.Tensor, chosen: int,
                    context: list[int]) -> tuple[Candidate, ...]:
        # Tokens still in play come first by their probability; tokens the settings removed follow by the model's
        # probability, so a chart shows what top-k / top-p / min-p cut away.
        rank = torch.where(probs > 0, probs + 2.0, model_probs)
        n = min(self.n_candidates, rank.shape[0])
        top = torch.topk(rank, n).indices.tolist()
        if chosen not in top:
            top.append(chosen)
        # Each as it would read after the text so far (a server that sends token ids names none of them).
        labels = next_token_labels(self.tokenizer, context, top) if self.labels else [""] * len(top)
        return tuple(Candidate(token_id=t, label=lab, prob=float(probs[t]), model_prob=float(model_probs[t]))
                     for t, lab in zip(top, labels))


class _LastRowContext(RunContext):
    """A RunContext that keeps, of every attention pattern, only the last query's row, as a float16 copy: a view
    would keep each layer's whole (n_head, T, S) pattern alive until the step ends."""

    def __init__(self, record: bool, **kw):
        super().__init__(**kw)
        self.record = record
        self.rows: list[torch.Tensor] = []

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = super().__call__(name, x)
        if self.record and name.endswith(".attn.pattern"):
            self.rows.append(x[0, :, -1, :].to("cpu", torch.float16, copy=True))  # (n_head, S)
        return x


def prefill_chunks(cfg: ModelConfig, n_tokens: int, chunk: int) -> list[int]:
    """Sizes of the pieces a text of ``n_tokens`` is read in, through a KV cache. Reading a piece after the
    earlier ones equals reading everything at once as long as no query needs a key that comes later: true for
    causal and sliding-window masks; a prefix-LM's prefix must sit in the first piece; a bidirectional mask
    cannot be split."""
    if cfg.mask == "bidirectional" or n_tokens <= chunk:
        return [n_tokens]
    first = max(chunk, cfg.prefix_len) if cfg.mask == "prefix" else chunk
    sizes = [min(first, n_tokens)]
    while sum(sizes) < n_tokens:
        sizes.append(min(chunk, n_tokens - sum(sizes)))
    return sizes


def _forward_last(model: Transformer, tokens: torch.Tensor, cache: KVCache | None, attention: bool, *,
                  chunk: int = limits.PREFILL_CHUNK_TOKENS):
    """Logits for the last position only, (V,), and optionally every layer's attention row of that position,
    (n_layer, n_head, S) in float16. Without a cache, one lives for this call only: a long text is read in chunks
    through it either way. Only the last position goes through the unembedding, so a long prompt does not pay for
    vocabulary-sized logits it throws away."""
    sizes = prefill_chunks(model.cfg, tokens.shape[0], chunk)
    if len(sizes) > 1 and cache is None:
        cache = KVCache(model.cfg.n_layer)
    pieces = tokens.split(sizes)
    for piece in pieces[:-1]:
        model(piece.unsqueeze(0), None, kv_cache=cache, head=False)  # fills the cache; its outputs are not needed
    last = pieces[-1]
    if last.shape[0] == 1 and not attention:
        ctx = None  # one token, nothing to record: the plain forward skips every hook call
    else:
        ctx = _LastRowContext(attention)
    hidden = model(last.unsqueeze(0), ctx, kv_cache=cache, head=False)  # (1, T, d_model) after the final norm
    attn = torch.stack(ctx.rows) if ctx is not None and attention else None  # (n_layer, n_head, S)
    return model.lm_head(hidden[0, -1]), attn  # (V,)


def generate(
    model: Transformer,
    tokenizer: ModelTokenizer,
    prompt: str | Sequence[int] | Prompt,
    settings: SamplingSettings | None = None,
    *,
    chat: bool = False,
    use_cache: bool = True,
    attention: bool = False,
    n_candidates: int = 10,
    stop_ids: Sequence[int] | None = None,
    max_prompt_tokens: int | None = limits.GENERATION_MAX_PROMPT_TOKENS,
    prefill_chunk: int = limits.PREFILL_CHUNK_TOKENS,
    labels: bool = True,
) -> Generation:
    """Continue ``prompt`` one token at a time; iterate the result for the Steps.

    Checks everything before the first step (raises ValueError with a sentence for the student): the model must
    be a decoder, the prompt non-empty, within ``max_prompt_tokens`` (the lab's cap; None lifts it) and shorter
    than the context, the settings sensible, and a run without the cache within explorer.limits' budget of tokens
    read. Generation ends at an end-of-text token (``stop_ids``, by default the tokenizer's EOS), after
    ``settings.max_new_tokens`` tokens, when the context is full, or as soon as the caller stops iterating (or
    closes the run, from any thread). ``labels=False`` leaves every Step's and candidate's ``label`` empty: naming
    eleven tokens a step is most of a step's Python time, wasted on a caller that sends token ids (the engine's
    HTTP server).
    """
    settings = settings or SamplingSettings()
    if not isinstance(settings, SamplingSettings):
        raise TypeError("settings must be a SamplingSettings")
    cfg = model.cfg
    if cfg.arch != "decoder":
        raise ValueError(Msg("generation.not_a_decoder", arch=cfg.arch))
    if not isinstance(n_candidates, int) or n_candidates < 1:
        raise ValueError("n_candidates must be a whole number of at least 1.")
    if not isinstance(prefill_chunk, int) or prefill_chunk < 1:
        raise ValueError("prefill_chunk must be a whole number of at least 1.")
    if not isinstance(prompt, Prompt):
        prompt = prepare_prompt(tokenizer, prompt, cfg.max_seq_len, chat=chat, max_prompt_tokens=max_prompt_tokens)
    elif max_prompt_tokens is not None and len(prompt) > max_prompt_tokens:
        raise ValueError(limits.prompt_too_long(len(prompt), max_prompt_tokens))
    elif len(prompt) >= cfg.max_seq_len:
        raise ValueError(Msg("generation.prompt_check.fills_context", max_seq_len=cfg.max_seq_len))
    if not use_cache and (too_long := limits.no_cache_too_long(len(prompt), settings.max_new_tokens)):
        raise ValueError(too_long)
    check_ids(model, prompt.ids)
    if stop_ids is None:  # a ModelTokenizer need not have an end-of-text token (ByteTokenizer has none)
        eos = getattr(tokenizer, "eos_token_id", None)
        stop_ids = [] if eos is None else [eos]
    # Without the cache every step re-reads the whole text: the teaching comparison of what the cache saves. It
    # stays a run of its own: in a batch its growing text would have to be padded against everyone's single new
    # token (each step as costly as a prefill for every row), and its per-step time is the lesson, which others'
    # rows would blur. Its cost is bounded by limits.GENERATION_MAX_TOKENS_READ.
    return Generation(model, tokenizer, prompt, settings, use_cache=use_cache, attention=attention,
                      n_candidates=n_candidates, stop_ids=stop_ids, prefill_chunk=prefill_chunk,
                      engine=engine_for(model) if use_cache else None, labels=labels)


def chat_template_prefix(tokenizer: ModelTokenizer) -> list[int]:
    """The tokens every chat prompt of ``tokenizer`` begins with: its system prompt and the user's header (what
    two different questions share); empty for a tokenizer without a chat template."""
    if not getattr(tokenizer, "supports_chat", False):
        return []
    a, b = tokenizer.chat_ids("a"), tokenizer.chat_ids("b")
    return a[:common_prefix(a, b)]


def pin_chat_template(model: Transformer, tokenizer: ModelTokenizer) -> int:
    """Keep the chat template's fixed beginning in the engine of ``model`` for good (Engine.pin_prefix), so a
    class's chat prompts never read it, even the first after a quiet spell; the tokens kept (0: none)."""
    ids = chat_template_prefix(tokenizer)
    return len(ids) if ids and engine_for(model).pin_prefix(ids) else 0


def solo_generation(model: Transformer, tokenizer: ModelTokenizer, prompt: str | Sequence[int] | Prompt,
                    settings: SamplingSettings | None = None, **kwargs) -> Generation:
    """``generate`` decoded in the calling thread, alone, with a growing KVCache: the eager loop the engine
    replaced, kept as the reference the engine is checked and timed against (tests, bench/bench_engine.py)."""
    run = generate(model, tokenizer, prompt, settings, **kwargs)
    return Generation(model, tokenizer, run.prompt, run.settings, use_cache=run.use_cache,
                      attention=run.attention, n_candidates=run.n_candidates, stop_ids=run.stop_ids,
                      prefill_chunk=run.prefill_chunk, labels=run.labels)


def tokens_per_second(seconds: Sequence[float]) -> float:
    """Steady decoding speed from per-token times: the tokens after the first one, over their time (the first step
    reads the whole prompt, which is latency rather than speed); a single token is all there is to go by."""
    rest = seconds[1:] or seconds
    return len(rest) / max(sum(rest), 1e-9)


@dataclass(frozen=True)
class SpeedReport:
    """Per-token times of one replay of a finished run, with or without the KV cache."""

    use_cache: bool
    seconds: tuple[float, ...]  # one per generated token; the first includes reading the prompt

    @property
    def tokens_per_second(self) -> float:
        return tokens_per_second(self.seconds)


def replay_speed(model: Transformer, prompt_ids: Sequence[int], token_ids: Sequence[int], *,
                 use_cache: bool) -> SpeedReport:
    """Time the model on exactly the tokens of a finished run, step by step, with or without a KV cache.

    Teacher forcing: the generated tokens are fed back as they were, so both replays do the same work a real run
    would, and nothing random can make one of them stop earlier. Without the cache, step i re-reads all
    len(prompt) + i tokens; with it, only the newest one.
    """
    if not prompt_ids or not token_ids:
        raise ValueError(Msg("generation.replay.nothing"))
    if (read := limits.tokens_read(len(prompt_ids), len(token_ids), use_cache=use_cache)) > \
            limits.GENERATION_MAX_TOKENS_READ:
        raise ValueError(Msg("generation.replay.too_long", read=read, budget=limits.GENERATION_MAX_TOKENS_READ))
    device = model.device
    seq = torch.tensor(list(prompt_ids) + list(token_ids), dtype=torch.long, device=device)
    n_prompt = len(prompt_ids)
    cache = KVCache(model.cfg.n_layer) if use_cache else None
    times = []
    for i in range(len(token_ids)):
        end = n_prompt + i
        tokens = seq[:end] if cache is None else (seq[:end] if i == 0 else seq[end - 1:end])
        start = time.perf_counter()
        with torch.inference_mode():
            logits, _ = _forward_last(model, tokens, cache, attention=False)
            logits.argmax().item()  # waits for the device, as a real step does when it reads its token
        times.append(time.perf_counter() - start)
    return SpeedReport(use_cache=use_cache, seconds=tuple(times))
