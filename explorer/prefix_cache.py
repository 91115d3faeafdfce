"""Keys and values of prompts the engine read lately, for a prompt that starts the same way (vLLM's automatic
prefix caching).

A class shares beginnings: every chat prompt of SmolLM2 starts with the same 24-token system prompt and header,
and a teacher often asks everyone to try the same prompt. The keys and values of a token depend only on it and
the tokens before it (under a causal or sliding-window mask), so a request whose first n tokens equal a stored
prompt's first n copies those n columns into its own cache row and reads only the rest.

The store holds whole prompts, each as one tensor (2, n_layer, n_kv_head, length, d_head), and finds the one that
shares the longest beginning with a new prompt. It is bounded in bytes: the least recently used prompt goes first.
A pinned prompt (``pin``: the chat template's system prompt, read when the model loads) stays through ``clear``
and is never evicted, so every burst of chat prompts starts from it. The store belongs to one engine, which
guards it with its lock.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch

# Fewer shared tokens than this are read again rather than copied: a copy touches every layer's cache (60 small
# copies for SmolLM2), which costs about what reading a few tokens along with the other prompts costs.
MIN_SHARED_TOKENS = 4
# 46 KB a token for SmolLM2 (30 layers x K and V x 3 heads x 64 x 4 bytes): about 1,400 prompt tokens, a class of
# 30 chat prompts of 40-odd tokens each.
DEFAULT_MAX_BYTES = 64 << 20
MAX_ENTRIES = 256  # bounds the search; a class's prompts fit many times over


def common_prefix(a: Sequence[int], b: Sequence[int], most: int | None = None) -> int:
    """How many first tokens ``a`` and ``b`` share (at most ``most``)."""
    n = min(len(a), len(b)) if most is None else min(len(a), len(b), most)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Entry:
    ids: tuple[int, ...]
    kv: torch.Tensor  # (2, n_layer, n_kv_head, len(ids), d_head)
    used: int  # the store's clock at its last use: the smallest goes first
    pinned: bool = False  # kept through clear() and never evicted (a chat template's fixed beginning)

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


class PrefixStore:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, *, min_tokens: int = MIN_SHARED_TOKENS,
                 max_entries: int = MAX_ENTRIES):
        self.max_bytes, self.min_tokens, self.max_entries = max_bytes, min_tokens, max_entries
        self._entries: list[Entry] = []
        self._clock = itertools.count()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, ids: Sequence[int], most: int) -> tuple[Entry | None, int]:
        """The stored prompt sharing the longest beginning with ``ids`` and how many tokens it shares (at most
        ``most``); (None, 0) below ``min_tokens``."""
        best, best_n = None, 0
        for entry in self._entries:
            n = common_prefix(ids, entry.ids, most)
            if n > best_n:
                best, best_n = entry, n
        if best is None or best_n < self.min_tokens:
            return None, 0
        best.used = next(self._clock)
        return best, best_n

    def pin(self, ids: Sequence[int], kv: torch.Tensor) -> None:
        """Keep ``ids`` for good (until ``clear(pinned=True)``), whatever the bytes of the others."""
        ids = tuple(int(i) for i in ids)
        if kv.shape[3] != len(ids):
            raise ValueError(f"{len(ids)} tokens but keys and values for {kv.shape[3]}.")
        for entry in [e for e in self._entries if e.ids == ids]:
            self._drop(entry)
        self._entries.append(Entry(ids, kv, next(self._clock), pinned=True))
        self.nbytes += self._entries[-1].nbytes

    def covers(self, ids: Sequence[int]) -> bool:
        """Whether a stored prompt begins with ``ids``: ``add`` would keep nothing new, so the engine need not copy
        the keys and values of a prompt asked again."""
        return self._covering(tuple(int(i) for i in ids)) is not None

    def add(self, ids: Sequence[int], kv: torch.Tensor) -> None:
        """Keep the keys and values ``kv`` of ``ids`` (see Entry). A stored prompt that ``ids`` extends is replaced;
        when ``ids`` is the beginning of a stored one, nothing new is kept."""
        ids = tuple(int(i) for i in ids)
        if kv.shape[3] != len(ids):
            raise ValueError(f"{len(ids)} tokens but keys and values for {kv.shape[3]}.")
        covering = self._covering(ids)
        if covering is not None:
            covering.used = next(self._clock)
            return
        for entry in [e for e in self._entries if ids[:len(e.ids)] == e.ids and not e.pinned]:
            self._drop(entry)  # the new prompt continues this one
        entry = Entry(ids, kv, next(self._clock))
        if entry.nbytes > self.max_bytes:
            return
        self._entries.append(entry)
        self.nbytes += entry.nbytes
        while self._evictable() and (self.nbytes > self.max_bytes or len(self._entries) > self.max_entries):
            self._drop(min(self._evictable(), key=lambda e: e.used))

    def clear(self, *, pinned: bool = False) -> None:
        """Forget the stored prompts; the pinned ones too when ``pinned`` (their weights changed)."""
        for entry in [e for e in self._entries if pinned or not e.pinned]:
            self._drop(entry)

    def _covering(self, ids: tuple[int, ...]) -> Entry | None:
        return next((e for e in self._entries if e.ids[:len(ids)] == ids), None)

    def _evictable(self) -> list[Entry]:
        return [e for e in self._entries if not e.pinned]

    def _drop(self, entry: Entry) -> None:
        self._entries.remove(entry)
        self.nbytes -= entry.nbytes
