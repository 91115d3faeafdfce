"""The two catalogs: every key in both languages, with the same placeholders, and sentences that survive a pickle
(st.cache_data keeps outcomes pickled) and say themselves in either language."""
import pickle

import pytest

from explorer.i18n import LANGS, Msg, catalog, lang_from_locale, placeholders, render, t


def test_every_key_is_in_both_languages():
    en, zh = set(catalog("en")), set(catalog("zh"))
    assert not sorted(en - zh), f"missing in zh: {sorted(en - zh)[:20]}"
    assert not sorted(zh - en), f"missing in en: {sorted(zh - en)[:20]}"


@pytest.mark.parametrize("key", sorted(catalog("en")))
def test_both_languages_take_the_same_placeholders(key):
    assert placeholders(catalog("en")[key]) == placeholders(catalog("zh").get(key, "")), key


def test_chinese_texts_are_written_in_chinese():
    # A zh entry copied from English unchanged is a missing translation; symbols, names and formulas may match.
    same = [k for k, v in catalog("zh").items()
            if v == catalog("en")[k] and sum(c.isalpha() and c.isascii() for c in v) > 24]
    assert not same, same[:20]


def test_a_message_says_itself_in_each_language_and_survives_a_pickle():
    msg = Msg("checks.whole_between", name="n_head", low=1, high=16, got="0")
    assert str(msg) == t("en", "checks.whole_between", name="n_head", low=1, high=16, got="0")
    back = pickle.loads(pickle.dumps(Msg.join([msg, Msg("checks.number", name="top_p", got="'x'")])))
    assert render(back, "zh") == t("zh", "checks.whole_between", name="n_head", low=1, high=16, got="0") + " " + \
        t("zh", "checks.number", name="top_p", got="'x'")
    assert "必须" in render(back, "zh") and "must" in str(back)


def test_a_message_inside_a_message_is_said_in_the_same_language():
    inner = Msg("nav.sizing.title")
    outer = Msg("common.course_notes", section=inner)
    assert outer.say("zh") == t("zh", "common.course_notes", section=t("zh", "nav.sizing.title"))
    assert str(outer) == t("en", "common.course_notes", section=t("en", "nav.sizing.title"))


@pytest.mark.parametrize("locale, lang", [("zh-CN", "zh"), ("zh-TW", "zh"), ("zh", "zh"), ("en-US", "en"),
                                          ("fr-FR", "en"), (None, "en"), ("", "en"), ("ZH_cn", "zh")])
def test_the_default_language_follows_the_browser(locale, lang):
    assert lang_from_locale(locale) == lang


def test_a_missing_key_falls_back_instead_of_breaking_a_page():
    assert t("zh", "no.such.key") == "no.such.key"
    assert set(LANGS) == {"zh", "en"}
