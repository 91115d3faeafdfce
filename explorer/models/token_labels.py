"""Readable labels for byte-level tokens.

Byte-level BPE (GPT-2, LLaMA-3, SmolLM2) and the byte tokenizer of the tiny models cut a Chinese character into
two or three tokens, none of which is a character on its own: decoded alone each one is '�'. In a sequence we
label such pieces by the character they build, with their part ('今 1/2', '今 2/2'); a piece on its own (a
candidate) shows its bytes ('‹E4 BB›').
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

@lru_cache(maxsize=1)
def _gpt2_char_to_byte() -> dict[str, int]:
    # GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others (control characters,
    # space, ...) are moved to code points from 256 up, in order.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    moved = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + moved)] = b
            moved += 1
    return table


def token_bytes(tokenizer, ids: Sequence[int]) -> list[bytes | None]:
    """The raw bytes of each token, or None where they cannot be known (a special token)."""
    own = getattr(tokenizer, "token_bytes", None)
    if own is not None:
        return own(ids)
    strings = getattr(tokenizer, "token_strings", None)
    if strings is None:
        return [None] * len(ids)
    table = _gpt2_char_to_byte()
    out: list[bytes | None] = []
    for s in strings(ids):
        out.append(bytes(table[c] for c in s) if s and all(c in table for c in s) else None)
    return out


def _is_piece(b: bytes | None) -> bool:
    """True for a token whose bytes are not text on their own: part of a multi-byte character."""
    if b is None:
        return False
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _hex(b: bytes | None) -> str:
    return "‹" + " ".join(f"{x:02X}" for x in b) + "›" if b else "‹?›"


def piece_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """One label per token of a single, unrelated list (candidates): incomplete characters show their bytes."""
    raw = token_bytes(tokenizer, ids)
    return [_hex(b) if _is_piece(b) else lab for lab, b in zip(tokenizer.token_labels(ids), raw)]


def _character_at(raw: Sequence[bytes | None], i: int) -> tuple[int, str] | None:
    """(number of tokens, text) of the shortest run of tokens from i whose bytes decode to printable text."""
    for j in range(i + 1, min(i + 4, len(raw)) + 1):  # a UTF-8 character has at most 4 bytes
        if raw[j - 1] is None:
            return None
        try:
            text = b"".join(raw[i:j]).decode("utf-8")
        except UnicodeDecodeError:
            continue
        text = text.strip() or "␣"
        # A control character: its byte says more than an invisible glyph.
        return (j - i, text) if text.isprintable() else None
    return None


def sequence_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """One label per token of a running text: pieces of one character are named after it, with their part."""
    labels = list(tokenizer.token_labels(ids))
    raw = token_bytes(tokenizer, ids)
    i = 0
    while i < len(labels):
        if not _is_piece(raw[i]):
            i += 1
            continue
        found = _character_at(raw, i)
        if found is None:
            labels[i] = _hex(raw[i])
            i += 1
            continue
        n, text = found
        for k in range(n):
            labels[i + k] = text if n == 1 else f"{text} {k + 1}/{n}"
        i += n
    return labels
