"""A pasted or uploaded config.json is bounded in size and nesting before it is parsed: a 2 KB file of brackets
used to raise RecursionError out of json.loads and show the server's traceback."""
import json

import pytest

from explorer.models.hf_config import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, parse_config_json
from explorer.presets import REAL_MODELS


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("text", [
    "[" * 1000 + "]" * 1000,  # the 2 KB file of issue 17
    "[" * 100_000,  # unbalanced, deeper than any recursion limit
    _nested(5000),
    b"[" * 1000 + b"]" * 1000,  # the same file uploaded
])
def test_deep_nesting_gets_a_sentence_not_a_recursion_error(text):
    with pytest.raises(ValueError, match="nested") as err:
        parse_config_json(text)
    assert "Traceback" not in str(err.value) and str(err.value).endswith(".")


def test_nesting_up_to_the_limit_parses_and_one_more_is_refused():
    inner = _nested(MAX_CONFIG_DEPTH - 1)  # the outer object of a config.json is one level
    assert parse_config_json('{"x": ' + inner + "}")["x"]["a"]
    with pytest.raises(ValueError, match="nested"):
        parse_config_json('{"x": ' + _nested(MAX_CONFIG_DEPTH) + "}")


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"model_type": "gpt2", "note": "[" * 1000 + "{" * 1000, "q": 'a \\" [[[ "'})
    assert parse_config_json(text)["model_type"] == "gpt2"


@pytest.mark.parametrize("as_bytes", [False, True])
def test_oversized_text_is_refused_before_it_is_read(as_bytes):
    text = '{"model_type": "gpt2", "pad": "' + "x" * MAX_CONFIG_BYTES + '"}'
    with pytest.raises(ValueError, match="too large"):
        parse_config_json(text.encode() if as_bytes else text)


def test_every_real_config_fits_the_limits():
    for name, model in REAL_MODELS.items():
        text = json.dumps(model.hf, indent=2)
        assert len(text.encode()) < MAX_CONFIG_BYTES / 10, name
        assert parse_config_json(text) == json.loads(text), name


def test_a_number_too_long_for_python_gets_a_sentence():
    with pytest.raises(ValueError, match="number far too long"):
        parse_config_json('{"model_type": "gpt2", "n_layer": ' + "9" * 5000 + "}")
