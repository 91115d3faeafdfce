"""Readable labels for byte-level tokens.

Byte-level BPE (GPT-2, LLaMA-3, SmolLM2) and the byte tokenizer of the tiny models cut a Chinese character into
two or three tokens, none of which is a character on its own: decoded alone each one is '�'. In a sequence we
label such pieces by the character they build, with their part ('今 1/2', '今 2/2'); a piece on its own (a
candidate) shows its bytes ('‹E4 BB›'), which is what every tokenizer's ``token_labels`` gives it: ``byte_label``
is the one label of a byte fragment.
"""
from __future__ import annotations

from typing import Sequence


def _gpt2_char_to_byte() -> dict[str, int]:
    # GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others (control characters,
    # space, ...) are moved to code points from 256 up, in order.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in printable]
    table = {chr(b): b for b in printable}
    table.update({chr(256 + n): b for n, b in enumerate(moved)})
    return table


_GPT2_BYTE_OF_CHAR = _gpt2_char_to_byte()


def gpt2_bytes(piece: str) -> bytes | None:
    """The bytes a byte-level BPE vocabulary entry stands for ('Ġthe' -> b' the'), or None for an entry with a
    character outside the byte alphabet."""
    if not piece or not all(c in _GPT2_BYTE_OF_CHAR for c in piece):
        return None
    return bytes(_GPT2_BYTE_OF_CHAR[c] for c in piece)


def byte_label(b: bytes | None) -> str:
    """The one label of bytes that are not a character on their own: '‹E4 BB›'."""
    return "‹" + " ".join(f"{x:02X}" for x in b) + "›" if b else "‹?›"


def visible(token: str) -> str:
    """A token's text with line breaks, tabs and blank tokens made visible on an axis."""
    token = token.replace("\n", "↵").replace("\t", "⇥")
    if not token.strip():
        return "␣" * max(1, len(token))
    return token


def _is_piece(b: bytes | None) -> bool:
    """True for a token whose bytes are not text on their own: part of a multi-byte character."""
    if b is None:
        return False
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


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
    raw = tokenizer.token_bytes(ids)
    i = 0
    while i < len(labels):
        if not _is_piece(raw[i]):
            i += 1
            continue
        found = _character_at(raw, i)
        if found is None:  # keeps the byte label the tokenizer gave it
            i += 1
            continue
        n, text = found
        for k in range(n):
            labels[i + k] = text if n == 1 else f"{text} {k + 1}/{n}"
        i += n
    return labels
