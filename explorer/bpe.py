"""Byte-pair encoding, small enough to read in one sitting and fast enough to step through in class.

BPE (Sennrich et al. 2016; byte-level as in GPT-2, Radford et al. 2019) starts from an alphabet of small units and
repeatedly merges the adjacent pair that occurs most often in the corpus into a new token, until it has made
``num_merges`` merges. Encoding a new text replays the merges in the order they were learned.

Starting alphabet
    ``byte_level=True``: the 256 byte values. Every text is bytes, so every text encodes and
    ``decode(encode(text)) == text`` exactly; a Chinese character (3 bytes in UTF-8) starts as 3 tokens and becomes
    one token only if the corpus shows it often enough.
    ``byte_level=False``: the characters of the corpus (sorted by code point), plus 256 byte tokens as *byte
    fallback* (SentencePiece's ``byte_fallback``, used by Llama): a character the corpus never showed is written as
    its UTF-8 bytes instead of one ``<unk>``, so nothing is lost and decoding still gives the text back.

Pre-tokenization
    As GPT-2 does, the text is first cut into chunks and no merge crosses a chunk boundary: a chunk is a run of
    word characters or a run of punctuation, each with at most one leading space, or a run of whitespace
    (:data:`CHUNK_PATTERN`). Chinese has no spaces, so a 唐诗 line's chunks are its phrases between ，and 。. A run
    is cut every 64 characters: a pasted page of Chinese without punctuation would otherwise be one chunk, and
    every merge would rescan all of it.

Counting
    Pairs are counted over distinct chunks times their frequency, overlapping as Hugging Face ``tokenizers`` counts
    them ('aaa' holds the pair (a, a) twice), and after a merge only the chunks that held the merged pair are
    recounted: one merge step costs the chunks it touches, not the whole corpus.

Tie rule
    The pair with the highest count wins; among pairs with the same count, the one with the smallest
    ``(left id, right id)`` wins: ids are byte values (or the alphabet's code-point order) for the starting tokens
    and creation order for merged ones, so ties go to the older, smaller units. ``tokenizers`` breaks ties by its
    own internal ids, which follow a different order, so the two agree merge for merge exactly when no step has a
    tie (tests/test_bpe_reference.py). Training stops early when no pair occurs twice (merging a pair seen once
    learns nothing about the language).
"""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from .models.token_labels import byte_label, sequence_labels, visible

# GPT-2's pre-tokenizer with \w in place of its \p{L}/\p{N} classes, so that Python's ``re`` and Oniguruma (the
# engine inside ``tokenizers``) cut the same chunks. The four branches cover every character, so the chunks
# joined are always the text.
CHUNK_PATTERN = r" ?\w{1,64}| ?[^\s\w]{1,64}|\s+(?!\S)|\s+"
_CHUNK = re.compile(CHUNK_PATTERN)
N_BYTES = 256
UNK = "<unk>"
TOP_PAIRS = 10  # pairs a merge step keeps for the lab's bar chart


def chunks(text: str) -> list[str]:
    """The pre-tokenizer: ' the', ' cat', '，', '床前明月光', '\\n' ... (joined, they are ``text``)."""
    return _CHUNK.findall(text)


@dataclass(frozen=True)
class MergeStep:
    """One training step, as the lab shows it."""

    rank: int  # 1 for the first merge
    pair: tuple[int, int]  # the ids merged
    count: int  # how often the pair occurred just before the merge
    new_id: int
    top_pairs: tuple[tuple[tuple[int, int], int], ...]  # the most frequent pairs before the merge, best first
    tie: bool  # another pair had the same count: the tie rule chose
    tokens_before: int  # corpus length in tokens before and after the merge
    tokens_after: int
    vocab_size: int  # after the merge


class BPETrainer:
    """Training state that advances one merge at a time (:meth:`step`), keeping every step it made."""

    def __init__(self, text: str, *, byte_level: bool = True):
        self.byte_level = byte_level
        self.alphabet: tuple[str, ...] = () if byte_level else tuple(sorted(set(text)))
        self.tokens: list[bytes] = _base_tokens(self.alphabet)
        self.merges: list[tuple[int, int]] = []
        self.steps: list[MergeStep] = []
        char_id = {c: N_BYTES + n for n, c in enumerate(self.alphabet)}
        counts = Counter(chunks(text))
        # Tuples, and dicts of ints below, hold only numbers, so the garbage collector stops tracking them: a
        # collection during a merge step then has a few objects to scan, not tens of thousands (a 0.1 s pause).
        self.words: list[tuple[int, ...]] = [tuple(_start_ids(w, byte_level, char_id)) for w in counts]
        self.freqs: list[int] = list(counts.values())
        self.n_tokens = sum(len(w) * f for w, f in zip(self.words, self.freqs))
        self.pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        # chunk indices per pair (a dict used as an ordered set); may hold chunks that have lost the pair since
        self.where: dict[tuple[int, int], dict[int, None]] = defaultdict(dict)
        for n, (word, freq) in enumerate(zip(self.words, self.freqs)):
            self._count(n, word, freq)
        # The best pair is read from a heap ordered as the tie rule ranks pairs: (-count, left id, right id). A
        # count that changes gets a new entry; an entry whose count is no longer the pair's is dropped when it comes
        # up. Scanning every pair instead cost ~8 ms a step on 唐诗, a heap costs what the step changed.
        self._heap = [(-c, a, b) for (a, b), c in self.pair_counts.items()]
        heapq.heapify(self._heap)

    def _count(self, n: int, word: Sequence[int], freq: int) -> None:
        for pair in zip(word, word[1:]):
            self.pair_counts[pair] += freq
            if freq > 0:
                self.where[pair][n] = None

    def best_pairs(self, k: int = TOP_PAIRS) -> list[tuple[tuple[int, int], int]]:
        """The ``k`` most frequent pairs now, in the order the tie rule ranks them."""
        top: list[tuple[tuple[int, int], int]] = []
        while self._heap and len(top) < k:
            negative, a, b = heapq.heappop(self._heap)
            if self.pair_counts.get((a, b)) == -negative and ((a, b), -negative) not in top:
                top.append(((a, b), -negative))
        for (a, b), count in top:  # still current: back for the next step
            heapq.heappush(self._heap, (-count, a, b))
        return top

    def step(self) -> MergeStep | None:
        """Make the next merge; None when no pair occurs twice."""
        top = self.best_pairs(TOP_PAIRS)
        if not top or top[0][1] < 2:
            return None
        pair, count = top[0]
        new_id = len(self.tokens)
        self.tokens.append(self.tokens[pair[0]] + self.tokens[pair[1]])
        self.merges.append(pair)
        before = self.n_tokens
        changed: set[tuple[int, int]] = set()
        for n in self.where.pop(pair):
            word = self.words[n]
            merged = tuple(_merge(word, pair, new_id))
            if len(merged) == len(word):
                continue  # a stale entry: an earlier merge took this chunk's pair
            freq = self.freqs[n]
            changed.update(zip(word, word[1:]))
            changed.update(zip(merged, merged[1:]))
            for old in zip(word, word[1:]):
                left = self.pair_counts[old] - freq
                if left:
                    self.pair_counts[old] = left
                else:
                    del self.pair_counts[old]
            self._count(n, merged, freq)
            self.words[n] = merged
            self.n_tokens -= (len(word) - len(merged)) * freq
        self.pair_counts.pop(pair, None)
        for a, b in changed:
            count_now = self.pair_counts.get((a, b))
            if count_now:
                heapq.heappush(self._heap, (-count_now, a, b))
        done = MergeStep(rank=len(self.merges), pair=pair, count=count, new_id=new_id, top_pairs=tuple(top),
                         tie=len(top) > 1 and top[1][1] == count, tokens_before=before,
                         tokens_after=self.n_tokens, vocab_size=len(self.tokens))
        self.steps.append(done)
        return done

    def tokenizer(self) -> "BPETokenizer":
        return BPETokenizer(list(self.merges), byte_level=self.byte_level, alphabet=self.alphabet,
                            steps=tuple(self.steps))


def _base_tokens(alphabet: Iterable[str]) -> list[bytes]:
    return [bytes([b]) for b in range(N_BYTES)] + [c.encode("utf-8") for c in alphabet]


def _start_ids(word: str, byte_level: bool, char_id: dict[str, int]) -> list[int]:
    """A chunk's starting tokens: its bytes, or its characters with byte fallback for one outside the alphabet."""
    if byte_level:
        return list(word.encode("utf-8"))
    ids: list[int] = []
    for c in word:
        if c in char_id:
            ids.append(char_id[c])
        else:
            ids.extend(c.encode("utf-8"))
    return ids


def _merge(word: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Every occurrence of ``pair`` in ``word`` replaced by ``new_id``, left to right ('aaa' -> 'Aa')."""
    out, i, a, b = [], 0, pair[0], pair[1]
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(text: str, num_merges: int, *, byte_level: bool = True) -> "BPETokenizer":
    """A BPE of up to ``num_merges`` merges learned from ``text`` (fewer when no pair occurs twice any more);
    its ``steps`` hold what each merge saw."""
    if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be a whole number >= 0, not {num_merges!r}")
    trainer = BPETrainer(text, byte_level=byte_level)
    for _ in range(num_merges):
        if trainer.step() is None:
            break
    return trainer.tokenizer()


class BPETokenizer:
    """Merges learned by :func:`train_bpe`, replayed on any text.

    Ids: 0-255 are the byte tokens (in character mode the byte fallback), then the character alphabet (character
    mode only), then one id per merge in the order learned."""

    def __init__(self, merges: Sequence[tuple[int, int]], *, byte_level: bool = True,
                 alphabet: Sequence[str] = (), steps: Sequence[MergeStep] = ()):
        self.byte_level = byte_level
        self.alphabet = tuple(alphabet)
        if byte_level and self.alphabet:
            raise ValueError("a byte-level BPE starts from the 256 bytes, not from an alphabet of characters")
        self.merges = [tuple(m) for m in merges]
        self.steps = tuple(steps)
        self._char_id = {c: N_BYTES + n for n, c in enumerate(self.alphabet)}
        self._tokens = _base_tokens(self.alphabet)
        self.n_base = len(self._tokens)
        self._rank: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            if not (0 <= a < len(self._tokens) and 0 <= b < len(self._tokens)):
                raise ValueError(f"merge {rank + 1} ({a}, {b}) names a token not made yet")
            self._rank[(a, b)] = rank
            self._tokens.append(self._tokens[a] + self._tokens[b])
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def _encode_chunk(self, chunk: str, limit: int) -> list[int]:
        word = _start_ids(chunk, self.byte_level, self._char_id)
        while len(word) > 1:
            # The earliest-learned merge present in the chunk, as training would have made it.
            best = min(zip(word, word[1:]), key=lambda p: self._rank.get(p, limit))
            rank = self._rank.get(best, limit)
            if rank >= limit:
                break
            word = _merge(word, best, self.n_base + rank)
        return word

    def encode(self, text: str, *, merges: int | None = None) -> list[int]:
        """Token ids of ``text``, using the first ``merges`` merges only when given (the corpus as it stood after
        that training step)."""
        limit = len(self.merges) if merges is None else max(0, min(merges, len(self.merges)))
        ids: list[int] = []
        for chunk in chunks(text):
            if limit == len(self.merges):
                cached = self._cache.get(chunk)
                if cached is None:
                    cached = tuple(self._encode_chunk(chunk, limit))
                    if len(self._cache) < 20_000:  # bounded: ~4 MB of a pasted text's chunks per shared tokenizer
                        self._cache[chunk] = cached
                ids.extend(cached)
            else:
                ids.extend(self._encode_chunk(chunk, limit))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``; bytes that are no UTF-8 (a model's cut-off character) decode as '�'."""
        return b"".join(self._tokens[int(i)] for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        return [self._tokens[int(i)] for i in ids]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        return [self.piece(i) for i in ids]

    def piece(self, token_id: int) -> str:
        """A readable label of one token alone: its text, or its bytes ('‹E5 BA›') when they are not a whole
        printable character."""
        raw = self._tokens[int(token_id)]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return byte_label(raw)
        if not text.replace("\n", "").replace("\t", "").replace(" ", "").isprintable():
            return byte_label(raw)
        return visible(text)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Labels of a running text: a character split over byte tokens is named in each part ('床₁/₃')."""
        return sequence_labels(self, list(ids))

    def is_byte_fallback(self, token_id: int) -> bool:
        """A character-mode byte token: a character the training text never showed."""
        return not self.byte_level and int(token_id) < N_BYTES

    def to_json(self) -> str:
        return json.dumps({"kind": "bpe", "byte_level": self.byte_level, "alphabet": "".join(self.alphabet),
                           "merges": [list(m) for m in self.merges]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, s: str) -> "BPETokenizer":
        data = json.loads(s)
        if not isinstance(data, dict) or data.get("kind") != "bpe":
            raise ValueError("not a BPE tokenizer file")
        merges, alphabet = data.get("merges"), data.get("alphabet", "")
        if not isinstance(merges, list) or not isinstance(alphabet, str) or not all(
                isinstance(m, list) and len(m) == 2 and all(type(i) is int for i in m) for m in merges):
            raise ValueError("a BPE tokenizer file holds its merges as pairs of ids and its alphabet as text")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("a BPE tokenizer file's alphabet repeats a character")
        return cls([tuple(m) for m in merges], byte_level=data.get("byte_level") is True, alphabet=tuple(alphabet))


class CharTokenizer:
    """One token per character of the training text; any other character is the one ``<unk>`` token (id 0)."""

    def __init__(self, chars: Sequence[str]):
        self.chars = tuple(chars)
        if len(set(self.chars)) != len(self.chars) or UNK in self.chars:
            raise ValueError("a character tokenizer's characters must be distinct")
        self._id = {c: n + 1 for n, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        return [self._id.get(c, 0) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; ``<unk>`` decodes as '�' (the character it stood for is gone)."""
        return "".join(self.chars[i - 1] if i > 0 else "\ufffd" for i in map(int, ids))

    def unknown(self, text: str) -> list[str]:
        """The characters of ``text`` this tokenizer writes as ``<unk>``, each once, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._id))

    def piece(self, token_id: int) -> str:
        token_id = int(token_id)
        return UNK if token_id == 0 else visible(self.chars[token_id - 1])

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        return [None if int(i) == 0 else self.chars[int(i) - 1].encode("utf-8") for i in ids]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        return [self.piece(i) for i in ids]

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": "".join(self.chars)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, s: str) -> "CharTokenizer":
        data = json.loads(s)
        if not isinstance(data, dict) or data.get("kind") != "char" or not isinstance(data.get("chars"), str):
            raise ValueError("not a character tokenizer file")
        return cls(tuple(data["chars"]))


def tokenizer_from_json(s: str) -> BPETokenizer | CharTokenizer:
    """Either kind, from its ``to_json``; ValueError for anything else."""
    data = json.loads(s)
    kind = data.get("kind") if isinstance(data, dict) else None
    return CharTokenizer.from_json(s) if kind == "char" else BPETokenizer.from_json(s)
