"""The tokenizer stack of the real models: a Hugging Face fast tokenizer behind a lock (the toy labs read Qwen's
BPE instead: explorer.models.toy_tokens).

The fast (Rust) tokenizers are not safe to call from several threads at once, and Streamlit runs one thread per
session; every tokenizer file is read once per process (:func:`shared_tokenizer`) and every call on it takes its
lock.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from tokenizers import Encoding

from .token_labels import byte_label, gpt2_bytes, visible


class SafeTokenizer:
    """A Hugging Face tokenizer behind a lock, with the few helpers the labs need."""

    def __init__(self, hf_tokenizer: Any):
        self._tok = hf_tokenizer
        self._lock = threading.Lock()
        self.supports_chat = getattr(hf_tokenizer, "chat_template", None) is not None
        self.vocab_size = len(hf_tokenizer)
        self.eos_token_id: int | None = hf_tokenizer.eos_token_id
        self.pad_token_id: int | None = hf_tokenizer.pad_token_id
        self.unk_token_id: int | None = hf_tokenizer.unk_token_id
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        self._wordpiece = backend is not None and type(backend.model).__name__ == "WordPiece"

    @contextmanager
    def locked(self) -> Iterator[Any]:
        """The raw tokenizer, for anything the helpers below do not cover; hold it only inside the block."""
        with self._lock:
            yield self._tok

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        with self._lock:
            return list(self._tok(text, add_special_tokens=add_special_tokens)["input_ids"])

    def pieces(self, text: str) -> Encoding:
        """The vocabulary pieces of ``text`` with their ids and character offsets, without special tokens, never
        padded nor truncated (a packaged tokenizer.json may ask for both; a text too long is the caller's to
        report)."""
        with self._lock:
            backend = self._tok.backend_tokenizer
            # transformers sets padding and truncation on the shared backend per call and leaves them there.
            backend.no_padding()
            backend.no_truncation()
            return backend.encode(text, add_special_tokens=False)

    def chat_text(self, user: str, *, system: str | None = None, add_generation_prompt: bool = True) -> str:
        """The prompt as the model was fine-tuned to see it (SmolLM2's ChatML template)."""
        if not self.supports_chat:
            raise ValueError("This model has no chat template: it is not a chat model.")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        with self._lock:
            return self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def chat_ids(self, user: str, *, system: str | None = None, add_generation_prompt: bool = True) -> list[int]:
        """Token ids of :meth:`chat_text` (the template already writes every special token)."""
        return self.encode(self.chat_text(user, system=system, add_generation_prompt=add_generation_prompt),
                           add_special_tokens=False)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        with self._lock:
            return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        """The bytes each byte-level BPE token stands for ('Ġthe' -> b' the'); None where a token is not bytes
        (every WordPiece piece)."""
        with self._lock:
            pieces = list(self._tok.convert_ids_to_tokens(list(ids)))
        return [None] * len(pieces) if self._wordpiece else [gpt2_bytes(p) for p in pieces]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        """Readable axis labels, one per token: WordPiece pieces as they are ('##ing'), byte-level BPE tokens
        decoded one by one (' the'), with line breaks and blank tokens made visible. A BPE token holding only part
        of a character (Chinese takes 3 bytes in UTF-8) shows its bytes: '‹E4 BB›'."""
        ids = list(ids)
        with self._lock:
            pieces = list(self._tok.convert_ids_to_tokens(ids))
            if self._wordpiece:
                return [visible(p) for p in pieces]
            decoded = [self._tok.decode([i]) for i in ids]
        return [visible(d) if "\ufffd" not in d else _fragment_label(p) for d, p in zip(decoded, pieces)]


def _fragment_label(piece: str) -> str:
    raw = gpt2_bytes(piece)
    return byte_label(raw) if raw is not None else piece


@lru_cache(maxsize=None)
def shared_tokenizer(folder: Path) -> SafeTokenizer:
    """The tokenizer saved in ``folder`` (a Hugging Face checkpoint folder), read once per process."""
    from transformers import AutoTokenizer

    return SafeTokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
