"""Our BPE trainer (explorer.bpe) against Hugging Face ``tokenizers``' BpeTrainer on the same corpus.

Both must see the same units, so ``tokenizers`` is configured as explorer.bpe works:
- pre-tokenizer: ``Split`` on explorer.bpe.CHUNK_PATTERN ('isolated': every match is a chunk of its own, and the
  pattern covers every character), so both count pairs inside the same chunks and never across them;
- byte level: then ``ByteLevel(use_regex=False, add_prefix_space=False)``, which only maps each byte to GPT-2's
  printable stand-in character, with the 256 bytes as the initial alphabet; character level: no byte mapping, so
  the alphabet is the corpus's characters (our byte-fallback tokens never occur in training text, so they never
  take part in a merge);
- ``min_frequency=2``: our trainer stops when no pair occurs twice, and tokenizers stops at the same point with it;
  no normaliser (none is set on a bare Tokenizer) and no special tokens.
The two break ties by different internal ids (explorer.bpe's docstring), so merges are compared exactly where the
choice had no tie: on whole corpora in which no step tied, and on real corpora up to the first tied step.
"""
from __future__ import annotations

import json
import random

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from explorer.bpe import CHUNK_PATTERN, train_bpe
from explorer.corpora import load_corpus
from explorer.models.token_labels import gpt2_bytes


def hf_merges(text: str, num_merges: int, *, byte_level: bool) -> list[tuple[bytes, bytes]]:
    tok = Tokenizer(models.BPE())
    split = pre_tokenizers.Split(Regex(CHUNK_PATTERN), behavior="isolated")
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        base = 256
    else:
        tok.pre_tokenizer = split
        alphabet = []
        base = len(set(text))
    trainer = trainers.BpeTrainer(vocab_size=base + num_merges, min_frequency=2, initial_alphabet=alphabet,
                                  show_progress=False, limit_alphabet=10**6)
    tok.train_from_iterator([text], trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    as_bytes = gpt2_bytes if byte_level else (lambda piece: piece.encode("utf-8"))
    return [(as_bytes(a), as_bytes(b)) for a, b in merges]


def our_merges(text: str, num_merges: int, *, byte_level: bool):
    tok = train_bpe(text, num_merges, byte_level=byte_level)
    pieces = tok.token_bytes(range(tok.vocab_size))
    return [(pieces[a], pieces[b]) for a, b in tok.merges], tok.steps


def random_corpus(seed: int) -> str:
    """200 words over a small alphabet, each repeated a random number of times: a pair's count is a sum over
    many words of random frequencies, so most such corpora have no tie in their first 40 merges (with fewer
    words, a merged token soon lives in one word only, and all its pairs there tie at that word's frequency)."""
    rng = random.Random(seed)
    words = {"".join(rng.choice("abcdefg") for _ in range(rng.randint(2, 7))) for _ in range(200)}
    stream = [w for w in sorted(words) for _ in range(rng.randint(1, 1000))]
    rng.shuffle(stream)
    return " ".join(stream)


@pytest.mark.parametrize("byte_level", [True, False])
def test_same_merges_on_corpora_without_ties(byte_level):
    compared = 0
    for seed in range(40):
        text = random_corpus(seed)
        ours, steps = our_merges(text, 40, byte_level=byte_level)
        if any(s.tie for s in steps) or len(steps) < 40:
            continue
        assert ours == hf_merges(text, 40, byte_level=byte_level), f"seed {seed}"
        compared += 1
    assert compared >= 5, f"only {compared} tie-free corpora: the comparison says too little"


@pytest.mark.parametrize("corpus", ["tangshi", "shakespeare"])
@pytest.mark.parametrize("byte_level", [True, False])
def test_same_merges_on_real_corpora_until_the_first_tie(corpus, byte_level):
    text = load_corpus(corpus)
    ours, steps = our_merges(text, 200, byte_level=byte_level)
    untied = next((s.rank - 1 for s in steps if s.tie), len(steps))
    assert untied >= 5, "the corpus ties too early to compare anything"
    assert ours[:untied] == hf_merges(text, 200, byte_level=byte_level)[:untied]


def test_tokenizers_breaks_a_tie_otherwise():
    """Why the comparison stops at a tie: with 'ab' and 'cd' equally frequent, our rule takes the smaller ids
    (the bytes of 'a', 'b'), wherever the pair first appears; tokenizers' order is its own, and the test only
    checks that ours is the documented one."""
    for text in ("ab\ncd\nab\ncd", "cd\nab\ncd\nab"):
        ours, steps = our_merges(text, 1, byte_level=True)
        assert steps[0].tie and ours == [(b"a", b"b")]
