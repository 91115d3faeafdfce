"""Labels of byte-level tokens (explorer.models.token_labels): a token holding part of a character is named after
that character with its part ('气₁/₂'), never shown as bytes, checked against the character offsets of the
`tokenizers` library itself (SmolLM2's tokenizer) and against the UTF-8 lengths of the characters."""
from __future__ import annotations

import random

import pytest

from explorer.models.tiny import ByteTokenizer
from explorer.models.token_labels import next_token_labels, part_label, sequence_labels

from .test_toy_tokens_chinese import expected_labels, spell


class _Pieces:
    """A byte-level tokenizer whose vocabulary is the pieces it is given (token i is pieces[i])."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces

    def token_bytes(self, ids):
        return [self.pieces[i] for i in ids]

    def token_labels(self, ids):
        return [f"own{i}" for i in ids]  # what the tokenizer says of each token alone


@pytest.fixture(scope="module")
def smol_tokenizer():
    from explorer.models.pretrained import smollm2_cache
    from explorer.models.tokenizer import shared_tokenizer

    return shared_tokenizer(smollm2_cache()[0])


@pytest.mark.slow
@pytest.mark.parametrize("text", ["今天天气", "今天天气很好 ok", "请用一句话介绍北京", "注意力 is attention, 日本語 too"])
def test_smollm2_split_characters_are_named_after_them(smol_tokenizer, text):
    enc = smol_tokenizer.pieces(text)  # the tokenizers library's own ids and character offsets
    labels = sequence_labels(smol_tokenizer, enc.ids)
    assert labels == expected_labels(text, enc.offsets)
    assert not any("‹" in label for label in labels) and spell(labels) == text
    # Alone, the first piece of 今 is no character: the tokenizer shows its bytes (a candidate's label).
    assert smol_tokenizer.token_labels(enc.ids[:1])[0].startswith("‹")


@pytest.mark.slow
def test_a_streamed_character_is_named_once_its_last_part_arrives(smol_tokenizer):
    ids = smol_tokenizer.pieces("今天天气").ids
    whole = sequence_labels(smol_tokenizer, ids)
    assert whole[-3:] == [part_label("气", k, 3) for k in (1, 2, 3)]
    # Before its last part, 气 is not known yet: its first parts show their bytes.
    early = sequence_labels(smol_tokenizer, ids[:-1])
    assert early[:-2] == whole[:-3] and all(label.startswith("‹") for label in early[-2:])
    # A candidate that completes it is named as the character's last part; one that starts another shows bytes.
    assert next_token_labels(smol_tokenizer, ids[:-1], [ids[-1], ids[0]]) == [whole[-1],
                                                                             smol_tokenizer.token_labels(ids[:1])[0]]


def test_byte_tokens_number_the_parts_of_each_character():
    tok = ByteTokenizer()
    rng = random.Random(0)
    alphabet = "ab 天气😀é\n"
    for _ in range(50):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        labels = sequence_labels(tok, tok.encode(text))
        expected = []
        for c in text:  # one token per byte: a character of n bytes is n parts
            n = len(c.encode())
            expected += tok.token_labels([ord(c)]) if n == 1 else [part_label(c, k, n) for k in range(1, n + 1)]
        assert labels == expected
        assert spell(labels).replace("↵", "\n") == text


def test_a_token_that_ends_one_character_and_starts_the_next():
    # 气 = E6 B0 94 and 很 = E5 BE 88, cut as E6 B0 | 94 E5 BE | 88; then a control character and an orphan byte.
    tok = _Pieces([b"\xe6\xb0", b"\x94\xe5\xbe", b"\x88", b"a\x08", b"\x94"])
    assert sequence_labels(tok, [0, 1, 2]) == ["气₁/₂", "气₂/₂很₁/₂", "很₂/₂"]
    assert sequence_labels(tok, [3, 4]) == ["own3", "‹94›"]  # whole characters keep the tokenizer's own label
    assert sequence_labels(tok, [0, 1]) == ["气₁/₂", "气₂/₂‹E5 BE›"]  # 很 is not complete yet
