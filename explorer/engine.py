"""One batched decoding engine per model: every session's generation runs through it, decoded together.

Decoding a 135M model on a CPU is bound by reading its weights: a step reads all of them for one sequence or for
sixteen, so sixteen students decoded in one batch cost little more than one. The engine of a model keeps the
running requests in one :class:`explorer.model.SlotKVCache` (a row each, every row with its own length) and a
background thread that, step after step:

1. lets interactive page work go first (``explorer.priority.yield_to_interactive``);
2. drops the requests that finished or were closed, and admits waiting ones in arrival order up to the cap;
3. reads the prompts of the requests that joined, as vLLM's chunked prefill does: as many prompts (or chunks of a
   long one, ``limits.PREFILL_CHUNK_TOKENS`` tokens each) as fit a budget of ``PREFILL_BUDGET_TOKENS`` tokens
   per step, earliest arrival first, laid end to end in ONE forward (``explorer.model.SlotPack``: each
   segment sees only its own row's keys, no padding). A class pressing Generate at once is read in a few steps,
   and a long prompt still delays the others by one chunk at a time, never by the whole prompt. A prompt that
   begins as one read before (a chat template's system prompt, the prompt a whole class was asked to try) copies
   that beginning's keys and values (``explorer.prefix_cache``) instead of reading it again, and one whose
   beginning a request ahead of it is reading right now waits a step for it;
4. runs the newest token of every running request through the model in one forward (per-row positions and
   masks, see ``explorer.model.Pass``), and picks each request's next token with its own sampling settings and
   its own seeded ``torch.Generator``.

Each pick waits in its request's small buffer until the caller reads it: a caller that stops reading is not decoded
further than ``BUFFER`` tokens ahead, and when others wait for a slot it is parked (its slot and cache freed; it
rejoins the line, re-reading its text, when it is read again). ``close()`` leaves at the next step.

Results do not depend on who else is decoding: a row's positions, mask, cache and random draws are its own; only
the matrix products are shared, whose sums a CPU may group differently for B rows than for one (last bits).
"""
from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import weakref
from collections import Counter, deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import limits, priority
from .i18n import Msg
from .model import RunContext, SlotKVCache, Transformer
from .prefix_cache import PrefixStore, common_prefix
from .sampling import SamplingSettings

MAX_BATCH_ENV = "EXPLORER_MAX_BATCH"
# Measured with bench/bench_engine.py (c) on the shared 2-core dev machine, SmolLM2, one torch thread, 32 tokens each,
# two runs back to back: total tokens/s 42.3 / 58.5 at 8 rows, 70.5 / 82.1 at 16, 98.6 / 99.9 at 32 (x3.2-3.3,
# x4.5-5.5, x5.5-7.6 of one stream alone). The total still grows past 16, each stream slows (7 -> 3 tokens/s), and
# (d) shows what a cap below the class costs: 30 students at once wait for whole runs ahead of them, first token
# p95 11 s at a cap of 16 against under 3 s at 32. 32 lets a class of 30 start at once.
# Its slot cache is up to 32 rows x (prompt + new tokens) x 46 KB a token for SmolLM2 (1.1 GB at the 512 + 256 caps).
DEFAULT_MAX_BATCH = 32
# Prompt tokens read per step, all joining requests together (two of limits.PREFILL_CHUNK_TOKENS: a long prompt's
# chunk and others beside it). bench/bench_engine.py (d), 30 students with 9-37-token prompts at once, cap 32, one
# torch thread, shared 2-core machine: first token p95 3.31 / 2.92 / 2.87 s at a budget of 128 / 256 / 512 (p50
# 1.95 / 2.24 / 2.31 s); a larger budget lets the running rows wait longer for their next token while prompts are
# read, for no gain past 256.
PREFILL_BUDGET_TOKENS = 2 * limits.PREFILL_CHUNK_TOKENS
BUFFER = 4  # picks decoded ahead of a caller that does not read: a Stop wastes at most this many steps
PARK_AFTER_S = 2.0  # a full buffer unread this long gives its slot to a waiting request
IDLE_EXIT_S = 30.0  # the thread ends after this long without work (the next request starts a new one)
IDLE_EXIT_ENV = "EXPLORER_ENGINE_IDLE_EXIT_S"  # another wait, in seconds (a bench that wants each class's prompts new)
CACHE_COLUMNS = 64  # the slot cache grows by whole blocks of columns, so it is rarely copied
PREFIX_CACHE_ENV = "EXPLORER_PREFIX_CACHE"  # "0" turns the reuse of prompts' beginnings off (to measure it)
# A prompt whose beginning a request ahead of it is reading right now waits a step for it rather than read the
# same tokens again, when that saves at least this many: a class pressing Generate at once shares the chat
# template's 24 tokens, and one step's wait (one short prompt read) costs less than reading them 30 times.
PREFIX_WAIT_TOKENS = 8
PREFIX_MASKS = ("causal", "sliding_window")  # masks under which a token's keys depend only on the tokens before it
COUNTERS = ("steps", "prefill_chunks", "prefill_forwards", "prefill_tokens", "prefill_seconds", "decode_seconds",
            "tokens_total", "prefix_hits", "prefix_tokens")  # what Engine.stats adds up since the engine began


def default_max_batch() -> int:
    """The most requests decoded together: ``EXPLORER_MAX_BATCH``, else DEFAULT_MAX_BATCH."""
    env = os.environ.get(MAX_BATCH_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass  # a malformed setting must not take the server down
    return DEFAULT_MAX_BATCH


def default_idle_exit_s() -> float:
    """How long the decoding thread (and with it the stored prompts) outlives its last request: IDLE_EXIT_S, or
    ``EXPLORER_ENGINE_IDLE_EXIT_S`` when that is a number of seconds from 0.1 to 3600."""
    try:
        seconds = float(os.environ.get(IDLE_EXIT_ENV, ""))
    except ValueError:
        return IDLE_EXIT_S  # unset or malformed: a setting must not take the server down
    return seconds if 0.1 <= seconds <= 3600 else IDLE_EXIT_S


def weights_version(model: Transformer) -> int | None:
    """A number that changes whenever any of the model's weights is written in place (torch's version counters);
    None when the model may change in another way: it is being trained (a weight requires grad), or its weights
    keep no counter (made under inference mode)."""
    try:
        total = 0
        for p in model.parameters():
            if p.requires_grad:
                return None
            total += p._version
        return total
    except RuntimeError:  # an inference tensor has no version counter
        return None


def can_reuse_prefixes(model: Transformer) -> bool:
    """Whether a stored beginning's keys and values stay right for ``model``: a causal or sliding-window mask (a
    token's keys depend only on the tokens before it) and frozen weights."""
    return model.cfg.mask in PREFIX_MASKS and weights_version(model) is not None


def reuses_prefixes(model: Transformer) -> bool:
    """Whether the engine of ``model`` reuses the keys and values of prompts' shared beginnings (module doc):
    where it can, unless EXPLORER_PREFIX_CACHE=0."""
    return os.environ.get(PREFIX_CACHE_ENV, "").strip() != "0" and can_reuse_prefixes(model)


@dataclass(frozen=True)
class Pick:
    """One token the engine chose for a request, with what its Step is built from (in the caller's thread)."""

    token: int
    position: int  # of the new token in the whole sequence
    probs: torch.Tensor  # (V,) after the settings
    model_probs: torch.Tensor  # (V,) the model's own softmax
    attention: np.ndarray | None  # (n_layer, n_head, position) float16 rows of the query that picked it
    seconds: float  # from the start of the engine step (or of the prefill) that produced it to the pick
    tokens_read: int  # tokens this request ran through the model for it
    finish: str | None


def pick_token(settings: SamplingSettings, logits: torch.Tensor, context: torch.Tensor,
               rng: torch.Generator | None) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(token, probs after the settings, the model's probs) for one row of logits (V,): the same function for a
    request decoded alone and in a batch, so both pick alike from alike logits."""
    logits = logits.float()
    model_probs = torch.softmax(logits, dim=-1)  # (V,)
    processed = settings.process(logits, context)
    # Greedy without a penalty leaves the logits as they are: no second softmax needed.
    probs = model_probs if processed is logits else torch.softmax(processed, dim=-1)
    if settings.greedy:
        token = processed.argmax()
    else:
        token = torch.multinomial(probs, 1, generator=rng)[0]
    return int(token), probs.cpu(), model_probs.cpu()


class EngineStopped(RuntimeError):
    """The engine's thread ended under a request (a bug or the model was dropped); the request cannot go on."""


class Request:
    """One generation inside the engine: its text so far, settings, random generator and buffered picks.
    Everything but ``ids`` / ``cached`` / the slot is read and written under the engine's lock."""

    _numbers = itertools.count()

    def __init__(self, ids: Sequence[int], settings: SamplingSettings, *, attention: bool,
                 stop_ids: frozenset[int], prefill_chunk: int, device: torch.device | str = "cpu"):
        self.number = next(self._numbers)  # arrival order, for first-come-first-served prefill
        self.ids = [int(i) for i in ids]  # prompt, then every picked token
        self.n_prompt = len(self.ids)
        self.settings, self.attention, self.stop_ids, self.prefill_chunk = settings, attention, stop_ids, prefill_chunk
        self.rng = None
        if not settings.greedy:
            self.rng = torch.Generator(device=device)  # where the model's probabilities are drawn from
            self.rng.manual_seed(settings.seed)
        self.out: deque[Pick] = deque()
        self.state = "new"  # new -> waiting -> running (-> waiting when parked) -> done
        self.cached = 0  # tokens of ids held in the slot cache
        self.plan: list[int] = []  # prefill chunk sizes still to read
        self.prefill_started = 0.0
        self.generated = 0
        self.finished = False
        self.closed = False
        self.error: BaseException | None = None
        self.last_read = time.monotonic()

    @property
    def uncached(self) -> int:
        return len(self.ids) - self.cached

    def remaining(self) -> int:
        return self.settings.max_new_tokens - self.generated


class _PatternRows(RunContext):
    """Keeps, of every layer's attention pattern, the last query's row of the batch rows that asked for it, as a
    float16 copy (a view would keep the whole (B, n_head, T, S) pattern alive until the step ends)."""

    def __init__(self, rows: list[int], queries: list[int] | None = None, first_keys: list[int] | None = None):
        super().__init__()
        self.index = torch.tensor(rows, dtype=torch.long)
        # A pack holds several requests in one batch row: each one's last query and the column its keys start at.
        self.queries = None if queries is None else torch.tensor(queries, dtype=torch.long)
        self.first_keys = first_keys or [0] * len(rows)
        self.rows: list[torch.Tensor] = []

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name.endswith(".attn.pattern"):
            picked = x[self.index, :, -1, :] if self.queries is None else x[self.index, :, self.queries, :]
            self.rows.append(picked.to("cpu", torch.float16, copy=True))  # (R, n_head, S)
        return x

    def of(self, i: int, length: int) -> np.ndarray:
        """Request i's (n_layer, n_head, length) attention (its own keys, no padding)."""
        first = self.first_keys[i]
        return torch.stack([layer[i, :, first:first + length] for layer in self.rows]).numpy()


class Engine:
    """Continuous batching for one model (see the module doc). Thread-safe; the decoding thread starts with the
    first request and ends after ``idle_exit_s`` without any."""

    def __init__(self, model: Transformer, max_batch: int | None = None, *, idle_exit_s: float | None = None,
                 buffer: int = BUFFER, park_after_s: float = PARK_AFTER_S,
                 prefill_budget: int = PREFILL_BUDGET_TOKENS):
        self._model = weakref.ref(model)  # a dropped model frees its engine (and the engine never keeps it alive)
        self.cfg = model.cfg
        self.max_batch = default_max_batch() if max_batch is None else max(1, int(max_batch))
        self.idle_exit_s = default_idle_exit_s() if idle_exit_s is None else idle_exit_s
        self.buffer, self.park_after_s = buffer, park_after_s
        self.prefill_budget = prefill_budget  # prompt tokens read per step, all joining requests together
        self._prefixes = PrefixStore() if reuses_prefixes(model) else None
        self._weights_version = weights_version(model)
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []  # index = row of the slot cache
        self._cache: SlotKVCache | None = None
        self._thread: threading.Thread | None = None
        self.steps = 0  # decode steps
        self.prefill_chunks = 0  # prompt chunks read
        self.prefill_forwards = 0  # forwards that read them (several chunks each when a class joins at once)
        self.prefill_tokens = 0  # prompt tokens they read
        self.prefill_seconds = self.decode_seconds = 0.0  # time spent in each kind of step (the engine's load)
        self.tokens_total = 0
        self.prefix_hits = 0  # requests that started from a stored prompt's keys and values
        self.prefix_tokens = 0  # prompt tokens they did not read again
        self.batch_sizes: Counter[int] = Counter()
        self.threads_started = 0
        self._stopping = False

    # ---- the callers' side -----------------------------------------------------------------------------------
    def submit(self, request: Request) -> Request:
        if request.uncached < 1:
            raise ValueError("A request needs at least one token to read.")
        if request.settings.max_new_tokens > limits.GENERATION_MAX_NEW_TOKENS:  # what one run may cost the server
            raise ValueError(Msg("generation.check.max_new_tokens", high=limits.GENERATION_MAX_NEW_TOKENS,
                                 got=repr(request.settings.max_new_tokens)))
        with self._cond:
            if request.state != "new":
                raise RuntimeError("This request was already submitted.")
            request.state = "waiting"
            self._waiting.append(request)
            self._ensure_thread()
            self._cond.notify_all()
        return request

    def take(self, request: Request, timeout: float | None = None) -> Pick | None:
        """The request's next pick, waiting for it; None once the request is closed (or after ``timeout``).
        Raises the request's error, if it had one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if request.out:
                    pick = request.out.popleft()
                    request.last_read = time.monotonic()
                    if request.state == "parked":  # read again: back in line for a slot
                        request.state = "waiting"
                        self._waiting.append(request)
                        self._ensure_thread()
                    self._cond.notify_all()  # room in its buffer: the engine may decode it again
                    return pick
                if request.error is not None:
                    raise request.error
                if request.closed or (request.finished and not request.out):
                    return None
                if request.state == "parked":  # parked with an empty buffer: it must decode again
                    request.state = "waiting"
                    self._waiting.append(request)
                    self._ensure_thread()
                    self._cond.notify_all()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(0.5 if left is None else min(left, 0.5))

    def cancel(self, request: Request) -> None:
        """Leave at the next step (or leave the line); safe from any thread, any number of times."""
        with self._cond:
            request.closed = True
            if request.state in ("waiting", "parked"):
                if request in self._waiting:
                    self._waiting.remove(request)
                request.state = "done"
            self._cond.notify_all()

    def place(self, request: Request) -> int:
        """0 while the request is decoding (or done, or about to start: a slot is free for it at the next step);
        n >= 1: it is n-th in line for a slot."""
        with self._cond:
            if request.state in ("waiting", "parked") and request in self._waiting:
                free = max(0, self.max_batch - len(self._running))
                return max(0, self._waiting.index(request) + 1 - free)
            return 0

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread after its current step; waiting and running requests fail with EngineStopped."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._fail_all(EngineStopped("The generation engine was stopped."))

    def clear_prefixes(self) -> None:
        """Forget every stored prompt beginning, pinned ones too (the next prompts are read in full)."""
        with self._cond:
            if self._prefixes is not None:
                self._prefixes.clear(pinned=True)

    def pin_prefix(self, ids: Sequence[int]) -> bool:
        """Read ``ids`` now, in the caller's thread, and keep their keys and values for good: every prompt that
        begins with them copies them instead of reading them (a chat template's system prompt, pinned when the
        model loads; explorer.generation.pin_chat_template). False when this engine does not reuse prefixes."""
        model = self._model()
        if self._prefixes is None or model is None or not 0 < len(ids) < self.cfg.max_seq_len:
            return False
        check_ids(model, ids)
        p = next(model.parameters())
        cache = SlotKVCache(self.cfg, 1, len(ids), dtype=p.dtype, device=p.device)
        with torch.inference_mode():
            model(torch.tensor([list(ids)], dtype=torch.long, device=model.device), kv_cache=cache.rows(0, 1),
                  head=False)
        cache.lengths[0] = len(ids)
        with self._cond:
            self._check_weights()
            if self._prefixes is None:
                return False
            self._prefixes.pin(ids, cache.snapshot(0, len(ids)))
            return True

    def set_prefix_reuse(self, on: bool) -> bool:
        """Turn the reuse of prompts' beginnings on or off (to measure what it saves); on only where
        ``can_reuse_prefixes``, whatever EXPLORER_PREFIX_CACHE says. Returns whether it is on."""
        model = self._model()
        with self._cond:
            if not (on and model is not None and can_reuse_prefixes(model)):
                self._prefixes = None
            elif self._prefixes is None:
                self._prefixes, self._weights_version = PrefixStore(), weights_version(model)
            return self._prefixes is not None

    def stats(self) -> dict:
        with self._cond:
            return {"running": len(self._running), "waiting": len(self._waiting),
                    **{name: getattr(self, name) for name in COUNTERS},
                    "prefix_cache_bytes": 0 if self._prefixes is None else self._prefixes.nbytes,
                    "batch_sizes": dict(sorted(self.batch_sizes.items())), "max_batch": self.max_batch,
                    "thread_alive": self._thread is not None and self._thread.is_alive(),
                    "threads_started": self.threads_started,
                    "cache_bytes": 0 if self._cache is None else self._cache.nbytes()}

    # ---- the decoding thread ---------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:  # caller holds the lock
        if self._stopping:
            raise EngineStopped("The generation engine was stopped.")
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._main, name="explorer-engine", daemon=True)
            self.threads_started += 1
            self._thread.start()

    def _main(self) -> None:
        try:
            while self._iteration():
                pass
        except BaseException as err:  # noqa: BLE001 -- a bug here must not leave callers waiting forever
            self._fail_all(EngineStopped(f"The generation engine stopped: {err!r}"))
            raise
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None
                if self._waiting and not self._stopping:  # a request arrived as the thread was ending
                    self._ensure_thread()

    def _fail_all(self, err: BaseException) -> None:
        with self._cond:
            for r in list(self._running) + list(self._waiting):
                r.error, r.state = err, "done"
            self._running.clear()
            self._waiting.clear()
            self._cache = None
            self._cond.notify_all()

    def _iteration(self) -> bool:
        """One engine step; False when the thread should end."""
        with self._cond:
            if self._stopping:
                return False
            self._tidy()
            if not self._running and not self._waiting:
                self._cache = None  # idle: the memory goes back
                deadline = time.monotonic() + self.idle_exit_s
                # Woken every second: a dropped model ends the thread (and with it the engine) soon.
                while (not self._waiting and not self._stopping and self._model() is not None
                       and time.monotonic() < deadline):
                    self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                if not self._waiting or self._stopping:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    if self._prefixes is not None:  # an idle server gives the memory back
                        self._prefixes.clear()
                    return False
                return True
            prefills = self._next_prefills()
            rows = self._ready_rows()
            if not prefills and not rows:  # every running request waits for its reader
                self._cond.wait(0.25)
                return True
        priority.yield_to_interactive()
        with self._cond:
            if self._waiting and len(self._running) < self.max_batch:
                return True  # they arrived while a page went first: admit them and read their prompts with these
        model = self._model()
        if model is None:
            self._fail_all(EngineStopped("The model of this engine was dropped."))
            return False
        start = time.perf_counter()
        with torch.inference_mode():
            if prefills:
                self._prefill(model, prefills)
            read = time.perf_counter()
            if rows:
                self._decode(model, rows, start)
        with self._cond:
            self.prefill_seconds += read - start
            self.decode_seconds += time.perf_counter() - read
        return True

    def _tidy(self) -> None:  # lock held: release finished / closed / failed rows, park idle ones, admit waiting
        for r in [r for r in self._running if r.closed or r.finished or r.error is not None]:
            self._release(r)
            r.state = "done"
        if self._waiting and len(self._running) >= self.max_batch:
            now = time.monotonic()
            for r in list(self._running):
                if len(self._running) < self.max_batch:
                    break
                if len(r.out) >= self.buffer and now - r.last_read > self.park_after_s:
                    self._release(r)
                    r.state, r.cached = "parked", 0  # rejoins the line when it is read
        admitted = False
        while self._waiting and len(self._running) < self.max_batch:
            r = self._waiting.popleft()
            r.state, r.cached, r.plan = "running", 0, []  # (re-)reads its text from the start
            self._running.append(r)
            admitted = True
        if admitted or self._running:
            self._fit_cache()

    def _release(self, r: Request) -> None:  # lock held: the last row takes the freed one, rows stay packed
        i = self._running.index(r)
        last = len(self._running) - 1
        if i != last and self._cache is not None:
            self._cache.move(last, i)
        elif self._cache is not None:
            self._cache.lengths[i] = 0
        self._running[i] = self._running[last]
        self._running.pop()

    def _fit_cache(self) -> None:  # lock held, engine thread: enough rows, and columns for every running request
        n = len(self._running)
        need = max(min(len(r.ids) + r.remaining(), self.cfg.max_seq_len) for r in self._running)
        cache = self._cache
        if cache is not None and cache.slots >= n and cache.capacity >= need:
            return
        slots = max(n, min(1 << (n - 1).bit_length(), self.max_batch))  # doubles: a class joining one by one
        columns = min(-(-need // CACHE_COLUMNS) * CACHE_COLUMNS, self.cfg.max_seq_len)  # copies the cache rarely
        if cache is not None:
            self._cache = cache.resized(max(slots, cache.slots), max(columns, cache.capacity))
            return
        model = self._model()
        p = next(model.parameters()) if model is not None else torch.zeros(())
        self._cache = SlotKVCache(self.cfg, slots, columns, dtype=p.dtype, device=p.device)

    def _next_prefills(self) -> list[Request]:  # lock held: the joiners whose next chunk is read this step
        """Earliest arrival first, each with its next chunk, as long as the chunks fit the step's budget; one
        that does not fit lets a later, shorter one go (the earliest always goes, so none waits for ever)."""
        from .generation import prefill_chunks  # the one rule for splitting a text (it lives with its tests)

        chosen, budget = [], self.prefill_budget
        reading = sorted((r for r in self._running if (r.plan or r.uncached > 1) and not r.closed),
                         key=lambda r: r.number)
        if self._prefixes is not None and any(r.cached == 0 and not r.plan for r in reading):
            self._check_weights()
        ahead: list[Request] = []  # earlier arrivals reading their text now: their keys are stored soon
        for r in reading:
            if r.cached == 0 and not r.plan and self._prefixes is not None and self._start_from_prefix(r, ahead):
                continue  # a request ahead is reading the same beginning: copy it next step
            ahead.append(r)
            if not r.plan:
                r.plan = prefill_chunks(self.cfg, r.uncached, r.prefill_chunk)
            if chosen and r.plan[0] > budget:
                continue
            if r.cached == 0:
                r.prefill_started = time.perf_counter()
            chosen.append(r)
            budget -= r.plan[0]
            if budget <= 0:
                break
        return chosen

    def _check_weights(self) -> None:  # lock held: weights written in place make every stored prefix wrong
        model = self._model()
        version = None if model is None else weights_version(model)
        if version != self._weights_version:
            self._prefixes.clear(pinned=True)
            self._weights_version = version
            if version is None:
                self._prefixes = None

    def _start_from_prefix(self, r: Request, ahead: list[Request]) -> bool:
        """Lock held, ``r`` not started: copy the longest stored beginning of its text into its row. True when
        it should wait instead, because a request ahead is reading a longer shared beginning right now."""
        most = len(r.ids) - 1  # its last token is read in any case: its logits pick the first new token
        entry, n = self._prefixes.match(r.ids, most)
        if any(common_prefix(r.ids, a.ids, most) >= n + PREFIX_WAIT_TOKENS for a in ahead):
            return True
        if entry is not None:
            self._cache.copy_in(self._running.index(r), entry.kv, n)
            r.cached = n
            self.prefix_hits += 1
            self.prefix_tokens += n
        return False

    def _ready_rows(self) -> list[int]:  # lock held: rows whose newest token can be decoded now
        return [i for i, r in enumerate(self._running)
                if r.uncached == 1 and not r.plan and not r.closed and not r.finished and len(r.out) < self.buffer]

    def _prefill(self, model: Transformer, chosen: list[Request]) -> None:
        """The chosen joiners' next chunks laid end to end in one forward (see the module doc). The running rows
        step in a forward of their own: mixed into the pack, each one-token query would be scored against every
        segment's keys (a dense (T, sum of keys) product per layer, measured 1.4 s against 0.44 s + 0.16 s apart
        for 30 rows and 128 prompt tokens of SmolLM2)."""
        with self._cond:
            chosen = [r for r in chosen if r in self._running]
            if not chosen:
                return
            rows = [self._running.index(r) for r in chosen]
            sizes = [r.plan[0] for r in chosen]
            tokens = [t for r, n in zip(chosen, sizes) for t in r.ids[r.cached:r.cached + n]]
            finishing = [b for b, r in enumerate(chosen) if len(r.plan) == 1]  # their prompt ends in this chunk
            tokens_read = [len(r.ids) for r in chosen]
        try:
            pack = self._cache.pack(rows, sizes)
            want = [k for k, b in enumerate(finishing) if chosen[b].attention]
            ctx = _PatternRows([0] * len(want), [pack.last_queries[finishing[k]] - 1 for k in want],
                               [pack.first_keys[finishing[k]] for k in want]) if want else None
            hidden = model(torch.tensor([tokens], dtype=torch.long, device=model.device), ctx, kv_cache=pack,
                           head=False)  # (1, sum(sizes), d_model)
            for row, n in zip(rows, sizes):
                self._cache.lengths[row] += n
            last = [pack.last_queries[b] - 1 for b in finishing]
            logits = model.lm_head(hidden[0, last]) if finishing else None  # (F, V)
        except Exception as err:  # noqa: BLE001 -- a request's failure is its own, the engine goes on
            if len(chosen) > 1:  # find whose: each alone (nothing was kept, the lengths did not move)
                for r in chosen:
                    self._prefill(model, [r])
                return
            with self._cond:
                chosen[0].error = err
                self._cond.notify_all()
            return
        stored = []  # the texts read to their end, for the requests after them that begin the same way
        if self._prefixes is not None and finishing:
            read = [(b, chosen[b].ids[:self._cache.lengths[rows[b]]]) for b in finishing]
            with self._cond:  # a prompt asked again is in the store already: no copy of its keys and values
                read = [(b, ids) for b, ids in read if not self._prefixes.covers(ids)]
            stored = [(ids, self._cache.snapshot(rows[b], len(ids))) for b, ids in read]
        with self._cond:
            self.prefill_chunks += len(chosen)
            self.prefill_forwards += 1
            self.prefill_tokens += sum(sizes)
            for r, n in zip(chosen, sizes):
                r.cached += n
                r.plan.pop(0)
            if self._prefixes is not None:
                for ids, kv in stored:
                    self._prefixes.add(ids, kv)
        if finishing:
            attention = [None] * len(finishing)
            for slot, k in enumerate(want):
                attention[k] = ctx.of(slot, tokens_read[finishing[k]])
            done = [chosen[b] for b in finishing]
            self._deliver(model, done, logits, attention, [r.prefill_started for r in done],
                          [tokens_read[b] for b in finishing])

    def _decode(self, model: Transformer, rows: list[int], start: float) -> None:
        with self._cond:
            running = list(self._running)
            ready = set(rows)
            # Rows that wait (their reader is behind, or their prefill is not done) run along with a placeholder
            # token: the forward covers the packed rows 0 .. n-1 as one view of the cache, and what a placeholder
            # writes sits beyond its row's length, where it is masked and later overwritten.
            n = max(rows) + 1
            tokens = [running[i].ids[-1] if i in ready else 0 for i in range(n)]
        requests = [running[i] for i in rows]
        try:
            view = self._cache.rows(0, n)
            want = [k for k, i in enumerate(rows) if running[i].attention]
            ctx = _PatternRows([rows[k] for k in want]) if want else None
            hidden = model(torch.tensor(tokens, dtype=torch.long, device=model.device)[:, None], ctx,
                           kv_cache=view, head=False)  # (n, 1, d_model)
            logits = model.lm_head(hidden[rows, -1])  # (R, V): only the rows that pick a token
        except Exception as err:  # noqa: BLE001 -- a failed step fails its rows, not the engine
            with self._cond:
                for r in requests:
                    r.error = err
                self._cond.notify_all()
            return
        for i in rows:
            self._cache.lengths[i] += 1
        attention = [None] * len(rows)
        for slot, k in enumerate(want):
            attention[k] = ctx.of(slot, len(requests[k].ids))
        with self._cond:
            for r in requests:
                r.cached += 1
            self.steps += 1
            self.batch_sizes[len(rows)] += 1
        self._deliver(model, requests, logits, attention, [start] * len(rows), [1] * len(rows))

    def _deliver(self, model: Transformer, requests: list[Request], logits: torch.Tensor, attention: list,
                 starts: list[float], tokens_read: list[int]) -> None:
        picks = []
        for b, r in enumerate(requests):
            try:
                context = torch.tensor(r.ids, dtype=torch.long, device=logits.device)
                token, probs, model_probs = pick_token(r.settings, logits[b], context, r.rng)
            except Exception as err:  # noqa: BLE001
                picks.append(err)
                continue
            position, index = len(r.ids), r.generated
            finish = None
            if token in r.stop_ids:
                finish = "eos"
            elif index + 1 == r.settings.max_new_tokens:
                finish = "max_new_tokens"
            elif position + 1 >= self.cfg.max_seq_len:
                finish = "context_full"
            picks.append(Pick(token=token, position=position, probs=probs, model_probs=model_probs,
                              attention=attention[b], seconds=time.perf_counter() - starts[b],
                              tokens_read=tokens_read[b], finish=finish))
        with self._cond:
            for r, pick in zip(requests, picks):
                if isinstance(pick, Exception):
                    r.error = pick
                    continue
                r.ids.append(pick.token)
                r.generated += 1
                r.finished = pick.finish is not None
                if not r.closed:
                    r.out.append(pick)
                self.tokens_total += 1
            self._cond.notify_all()


_ENGINES: "weakref.WeakKeyDictionary[Transformer, Engine]" = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """End every engine thread before the interpreter tears down: a daemon thread still inside a torch op at
    exit aborts the process ("terminate called without an active exception")."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
    for engine in engines:
        engine.stop()


def engine_for(model: Transformer) -> Engine:
    """The one engine of ``model`` (made on first use; it goes when the model goes)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(model)
        if engine is None:
            engine = _ENGINES[model] = Engine(model)
        return engine


def engine_stats(model: Transformer) -> dict:
    """What the engine of ``model`` did so far: running, waiting, steps, tokens_total, batch_sizes ({size: steps})
    and more (see Engine.stats); zeros when it has none yet."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(model)
    if engine is None:
        return {"running": 0, "waiting": 0, **{name: 0 for name in COUNTERS}, "prefix_cache_bytes": 0,
                "batch_sizes": {}, "max_batch": default_max_batch(), "thread_alive": False, "threads_started": 0,
                "cache_bytes": 0}
    return engine.stats()


def check_ids(model: Transformer, ids: Sequence[int]) -> None:
    """Token ids the model has: an id out of its vocabulary would fail inside the engine's thread."""
    bad = [i for i in ids if not 0 <= int(i) < model.cfg.vocab_size]
    if bad:
        raise ValueError(Msg("engine.bad_token", token=bad[0], vocab=model.cfg.vocab_size))
