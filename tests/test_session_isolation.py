"""Nothing one session does can change what another sees: what the labs cache and hand out is a copy, or shared
read-only (only ever run, never written to, parameters without gradients)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explorer.labs.attention import (
    AttentionSettings, _square_weights, _study_weights, build_layer, run_attention, sqrt_dk_study,
)
from explorer.generation import generate
from explorer.labs.positional import attention_patterns, encoding_model, permutation_experiment
from explorer.sampling import SamplingSettings
from explorer.models.tiny import TINY_DECODERS, load_tiny
from explorer.models.toy_tokens import tokenize

SENTENCE = tokenize("今天天气很好")


def _vandalise(tensors) -> None:
    """What a careless session could do to whatever it was handed."""
    with torch.no_grad():
        for t in tensors:
            t.mul_(-3.0).add_(1.0)


def _assert_same_result(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


def test_editing_the_attention_lab_layer_changes_nothing_for_the_next_caller():
    settings = AttentionSettings(d_model=32, n_head=4, seed=3)
    before = run_attention(SENTENCE, settings)
    mine = build_layer(settings.config(), settings.seed)
    _vandalise(mine.parameters())
    # Another head count splits the same cached draw into other heads: it is not reached either.
    _vandalise(build_layer(dataclasses.replace(settings, n_head=2).config(), settings.seed).parameters())
    theirs = build_layer(settings.config(), settings.seed)
    assert not torch.equal(theirs.W_q.weight, mine.W_q.weight)
    _assert_same_result(run_attention(SENTENCE, settings), before)


def test_editing_the_cached_weight_draws_changes_nothing_for_the_next_caller():
    settings = AttentionSettings(d_model=32, n_head=4, seed=5)
    layer_before, study_before = run_attention(SENTENCE, settings), sqrt_dk_study(SENTENCE, settings)
    _vandalise(_square_weights(32, 5))
    _vandalise(_study_weights(32, 5, max(study_before.d_k)))
    _assert_same_result(run_attention(SENTENCE, settings), layer_before)
    assert sqrt_dk_study(SENTENCE, settings) == study_before


@pytest.mark.parametrize("positional", ["sinusoidal", "rope", "alibi"])
def test_the_positional_lab_model_is_shared_read_only(positional):
    """The lab keeps one model per setting for every session (st.cache_resource): the functions the page hands
    it to only run it, and it takes no gradients."""
    model = encoding_model(positional, seed=1)
    assert not any(p.requires_grad for p in model.parameters())
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    attention_patterns(model, SENTENCE, seed=1)
    permutation_experiment(model, SENTENCE, shuffle_seed=2, seed=1)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in snapshot.items())


@pytest.mark.parametrize("name", TINY_DECODERS)
def test_tiny_models_are_shared_read_only_and_each_load_is_its_own(name):
    shared = load_tiny(name)
    assert not any(p.requires_grad for p in shared.model.parameters())
    snapshot = {k: v.clone() for k, v in shared.model.state_dict().items()}
    steps = list(generate(shared.model, shared.tokenizer, "hello", SamplingSettings(seed=0, max_new_tokens=6),
                          attention=True))
    assert len(steps) == 6
    assert all(torch.equal(shared.model.state_dict()[k], v) for k, v in snapshot.items())
    _vandalise(load_tiny(name).model.parameters())
    assert all(torch.equal(load_tiny(name).model.state_dict()[k], v) for k, v in snapshot.items())


@pytest.mark.slow
def test_internals_results_are_per_session_copies_and_the_real_model_takes_no_gradients():
    from explorer.ui.internals import cached_analysis
    from explorer.ui.models import shared_model

    text = "The cat sat on the mat."
    mine = cached_analysis("minilm-l6", text, False)
    expected = mine.patterns.copy()
    mine.patterns[...] = 0
    np.testing.assert_array_equal(cached_analysis("minilm-l6", text, False).patterns, expected)
    assert not any(p.requires_grad for p in shared_model("minilm-l6").model.parameters())
