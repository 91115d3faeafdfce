"""Every word the app shows, in Chinese and English, from one catalog per language (assets/i18n/<lang>.toml).

A notebook uses it directly: ``t("zh", "attention.title")``. Nothing here is global per process on purpose (never
``gettext.install()``): forty sessions share one server, each in its own language, so every call names its language.

The library's sentences for a student (a control out of range, a fallback) are ``Msg`` objects: a ``str`` that
reads as English wherever a plain string is expected (logs, tests, notebooks) and that carries its catalog key and
parameters, so a page can say it in the student's language with ``render(text, lang)``.
"""
from __future__ import annotations

import functools
import string
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

LANGS = ("zh", "en")
DEFAULT_LANG = "en"  # for a browser that asks for neither language
LANG_NAMES = {"zh": "中文", "en": "English"}
CATALOG_DIR = Path(__file__).resolve().parent.parent / "assets" / "i18n"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, key + "."))
        elif isinstance(value, str):
            flat[key] = value
        else:
            raise ValueError(f"catalog entry {key} is {type(value).__name__}, not text")
    return flat


@functools.cache
def catalog(lang: str) -> Mapping[str, str]:
    """The flattened catalog of ``lang``: 'attention.title' -> its text."""
    if lang not in LANGS:
        raise ValueError(f"no catalog for language {lang!r}; the app speaks {', '.join(LANGS)}")
    with (CATALOG_DIR / f"{lang}.toml").open("rb") as f:
        return _flatten(tomllib.load(f))


def placeholders(text: str) -> set[str]:
    """The named fields a catalog text formats ('{n_head}' -> 'n_head'), to check both languages take the same."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}


def t(lang: str, key: str, /, **params: Any) -> str:
    """The text of ``key`` in ``lang`` with ``params`` filled in (``{n:,}`` formats as str.format does). Parameters
    that are ``Msg`` are said in the same language. A key missing from ``lang`` falls back to English, then to the
    key itself, so a page never breaks on a missing word (tests/test_i18n.py fails on every missing key)."""
    texts = catalog(lang if lang in LANGS else DEFAULT_LANG)
    text = texts.get(key)
    if text is None:
        text = catalog("en").get(key, key)
    said = {name: render(value, lang) for name, value in params.items()}
    return text.format(**said) if params else text


def render(text: Any, lang: str) -> Any:
    """``text`` in ``lang`` if it is a ``Msg``; anything else (a number, a plain string) as it is."""
    return text.say(lang) if isinstance(text, Msg) else text


class Msg(str):
    """A sentence from the catalog: ``str(msg)`` is its English text, ``msg.say("zh")`` its Chinese one."""

    key: str
    params: dict[str, Any]

    def __new__(cls, key: str, /, **params: Any) -> "Msg":
        self = super().__new__(cls, t("en", key, **params) if key else _join_en(params))
        self.key, self.params = key, params
        return self

    def say(self, lang: str) -> str:
        if not self.key:  # a join of several sentences
            return self.params["sep"].join(str(render(part, lang)) for part in self.params["parts"])
        return t(lang, self.key, **self.params)

    def __reduce__(self):  # st.cache_data pickles outcomes: keep the key, not only the English text
        return (_rebuild, (self.key, self.params))

    @classmethod
    def join(cls, parts: Iterable[Any], sep: str = " ") -> "Msg":
        """Sentences said one after another, each in the reader's language."""
        return cls("", parts=tuple(parts), sep=sep)


def _join_en(params: Mapping[str, Any]) -> str:
    return params["sep"].join(str(part) for part in params["parts"])


def _rebuild(key: str, params: dict[str, Any]) -> Msg:
    return Msg(key, **params)


def sentence_of(err: BaseException) -> str:
    """The sentence an exception carries for the student: its Msg when it has one (``str(err)`` would keep only
    the English), else its text."""
    return err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else str(err)


def lang_from_locale(locale: str | None) -> str:
    """The app's language for a browser's ``navigator.language`` ('zh-CN', 'zh-TW', 'en-GB', None ...)."""
    if isinstance(locale, str):
        code = locale.strip().lower().replace("_", "-").split("-")[0]
        if code in LANGS:
            return code
    return DEFAULT_LANG
