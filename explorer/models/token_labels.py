"""Readable labels for byte-level tokens.

Byte-level BPE (Qwen's, GPT-2's and SmolLM2's) and the byte tokenizer of the tiny models cut a character that is
rare in their training text into two or three tokens, none of which is a character on its own: decoded alone each
one is '�'. In a running text (:func:`sequence_labels`) a token is labelled by the characters it makes up, found
from the bytes of the whole text, and a character split over several tokens is written once per token with its
part as subscripts: SmolLM2 writes 气 as two tokens, labelled '气₁/₂' and '气₂/₂'; a token that ends one
character and begins the next is '气₂/₂很₁/₂'; Qwen's ' 龘' is ' 龘₁/₃', '龘₂/₃', '龘₃/₃'. The subscripts keep a
label one character wide plus a small mark on a chart axis, and no label is ever bytes where the character is known.

Bytes ('‹E4 BB›', :func:`byte_label`) are shown only where no character exists yet: a token alone (a candidate
for the next token, ``token_labels``), the start of a character whose remaining bytes are not in the text (the last
token of a streaming answer, which becomes '气₁/₂' once the next token completes 气: callers relabel the whole
text with :func:`sequence_labels` at every step, or label candidates with :func:`next_token_labels`), bytes
that are no UTF-8 at all, and a control character (its byte says more than an invisible glyph).
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import NamedTuple, Sequence

_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_TOKENS_BACK = 3  # a UTF-8 character has at most 4 bytes: at most 3 tokens before the last hold its start


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
    """The one label of bytes that are not a character (yet): '‹E4 BB›'."""
    return "‹" + " ".join(f"{x:02X}" for x in b) + "›" if b else "‹?›"


def visible(token: str) -> str:
    """A token's text with line breaks, tabs and blank tokens made visible on an axis."""
    token = token.replace("\n", "↵").replace("\t", "⇥")
    if not token.strip():
        return "␣" * max(1, len(token))
    return token


def part_label(char: str, part: int, parts: int) -> str:
    """Part ``part`` of ``parts`` tokens of one character: part_label('气', 1, 2) == '气₁/₂'."""
    return f"{char}{str(part).translate(_SUBSCRIPT)}/{str(parts).translate(_SUBSCRIPT)}"


class _Unit(NamedTuple):
    start: int  # byte offsets in the whole text
    end: int
    text: str | None  # the character, or None for bytes that are not (yet) one


def _utf8_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1  # a continuation byte or a byte UTF-8 never uses: a unit of its own, not a character


def _units(data: bytes) -> list[_Unit]:
    """The text's characters with their byte spans; each byte that is no complete character is a unit alone."""
    units, p = [], 0
    while p < len(data):
        n = _utf8_length(data[p])
        try:
            units.append(_Unit(p, p + n, data[p:p + n].decode("utf-8")))
            p += n
        except UnicodeDecodeError:  # cut short (the rest is not in the text) or invalid
            units.append(_Unit(p, p + 1, None))
            p += 1
    return units


def _run_labels(raw: Sequence[bytes], own: Sequence[str]) -> list[str]:
    """Labels of consecutive byte tokens, read as one text. A token that holds no part of a split character keeps
    ``own`` (its tokenizer's label)."""
    starts = list(accumulate((len(b) for b in raw[:-1]), initial=0))
    units = _units(b"".join(raw))
    owners: list[list[int]] = []  # the tokens each unit overlaps, in order: a split character's parts
    per_token: list[list[int]] = [[] for _ in raw]  # the units each token overlaps
    for n, u in enumerate(units):
        k = bisect_right(starts, u.start) - 1
        owners.append([])
        while k < len(raw) and starts[k] < u.end:
            if len(raw[k]):  # an empty token overlaps nothing
                owners[n].append(k)
                per_token[k].append(n)
            k += 1
    labels = list(own)
    for k, mine in enumerate(per_token):
        if all(len(owners[n]) == 1 and units[n].text is not None for n in mine):
            continue  # only whole characters: the tokenizer's own label
        text, pending = [], b""
        for n in mine:
            u, parts = units[n], owners[n]
            if u.text is None:
                pending += raw[k][max(u.start - starts[k], 0):u.end - starts[k]]
                continue
            if pending:
                text.append(byte_label(pending))
                pending = b""
            char = u.text if u.text.isprintable() or u.text in "\n\t" else byte_label(u.text.encode("utf-8"))
            text.append(char if len(parts) == 1 else part_label(char, parts.index(k) + 1, len(parts)))
        if pending:
            text.append(byte_label(pending))
        labels[k] = visible("".join(text))
    return labels


def sequence_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """One label per token of a running text: a token holding part of a character is labelled with that character
    and its part ('气₁/₂'). ``tokenizer`` gives ``token_labels`` (each token alone) and ``token_bytes`` (None for a
    token that is not bytes: a special token, a WordPiece piece, which keep their own label and split the text)."""
    ids = list(ids)
    labels = list(tokenizer.token_labels(ids))
    raw = tokenizer.token_bytes(ids)
    i = 0
    while i < len(ids):
        if raw[i] is None:
            i += 1
            continue
        j = i
        while j < len(ids) and raw[j] is not None:
            j += 1
        labels[i:j] = _run_labels(raw[i:j], labels[i:j])
        i = j
    return labels


def next_token_labels(tokenizer, context: Sequence[int], candidates: Sequence[int]) -> list[str]:
    """The label of each candidate token as it would read appended to ``context`` (the ids so far): a candidate
    that completes the character the context began is that character's last part ('气₂/₂'); one that begins a
    character it does not complete shows its bytes, as nothing tells which character it will be."""
    tail = list(context)[-_TOKENS_BACK:]
    return [sequence_labels(tokenizer, tail + [int(c)])[-1] for c in candidates]
