"""The training lab's texts: present, in the script and shape promised, small, and split without losing a character."""
import unicodedata

import pytest

from explorer import corpora
from explorer.corpora import CORPORA, load_corpus, split

# A few characters whose traditional and simplified forms differ: none may survive the t2s conversion.
TRADITIONAL = "見來書無詩風東國說時長門開過為後學會對聲蟬鬢獨歎"


def test_every_corpus_loads_and_is_small():
    for name in CORPORA:
        text = load_corpus(name)
        assert 20_000 < len(text) and len(text.encode("utf-8")) < 500_000, name
        assert "\r" not in text and text.endswith("\n") and not text.endswith("\n\n")


def test_tangshi_is_simplified_poems_with_title_and_author():
    text = load_corpus("tangshi")
    assert not set(TRADITIONAL) & set(text)
    blocks = text.strip("\n").split("\n\n")
    assert 300 <= len(blocks) <= 400  # 唐诗三百首: about three hundred poems (some titles hold several)
    first = blocks[0].split("\n")
    assert first[:2] == ["在岳咏蝉", "骆宾王"] and first[2] == "西陆蝉声唱，南冠客思侵。"
    for block in blocks:
        lines = block.split("\n")
        assert len(lines) >= 3 and all(lines), block[:40]  # title, author, at least one line
    assert "静夜思\n李白\n" in text
    assert "[" not in text  # the source's editorial brackets are removed


def test_shakespeare_is_the_sonnets():
    text = load_corpus("shakespeare")
    assert text.startswith("THE SONNETS\nby William Shakespeare")
    assert "From fairest creatures we desire increase," in text
    assert "Love's fire heats water, water cools not love." in text
    assert all(unicodedata.category(c)[0] != "C" or c == "\n" for c in text)


def test_unknown_corpus_is_refused_with_a_sentence():
    with pytest.raises(ValueError) as err:
        load_corpus("odyssey")
    assert "tangshi" in str(err.value) and err.value.args[0].key == "checks.one_of"


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.5])
@pytest.mark.parametrize("name", CORPORA)
def test_split_keeps_every_character_near_the_fraction_at_a_block(name, fraction):
    text = load_corpus(name)
    train, val = split(text, fraction)
    assert train + val == text
    assert abs(len(val) / len(text) - fraction) < fraction / 2
    assert train.endswith("\n\n")  # cut at a poem's (a sonnet's) start: validation never begins mid-poem


def test_split_of_text_without_blocks_cuts_at_a_line_then_anywhere():
    lines = "".join(f"line {i}\n" for i in range(100))
    train, val = split(lines, 0.1)
    assert train + val == lines and train.endswith("\n") and val.startswith("line ")
    flat = "abcdefghij" * 10
    assert split(flat, 0.1) == (flat[:90], flat[90:])
    assert split("ab", 0.5) == ("a", "b")


@pytest.mark.parametrize("bad", [0, -0.1, 0.51, 1, float("nan"), True, "0.1", None])
def test_split_refuses_a_bad_fraction(bad):
    with pytest.raises(ValueError) as err:
        split("some text\n" * 10, bad)
    assert err.value.args[0].key == "training.lib.val_fraction"


def test_split_refuses_a_text_too_short():
    with pytest.raises(ValueError) as err:
        split("a", 0.1)
    assert err.value.args[0].key == "training.lib.text_too_short"


def test_catalog_has_the_library_sentences_in_both_languages():
    from explorer.i18n import catalog, placeholders
    for key in ("training.lib.val_fraction", "training.lib.text_too_short", "training.lib.corpus_name"):
        assert placeholders(catalog("en")[key]) == placeholders(catalog("zh")[key])
    assert corpora.CORPUS_DIR.joinpath("NOTICE.md").is_file()
