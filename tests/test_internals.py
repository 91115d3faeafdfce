"""explorer.labs.internals on the real models, checked against transformers' own models and torch references."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.labs.internals import FALLBACK_TEXT, MAX_COMPARE, MAX_TOKENS, InternalsSettings, Steps, run
from explorer.labs.internals_facts import attention_entropy, head_view_lines, residual_norms
from explorer.labs.internals_passes import (DEFAULT_COMPARE, ablate, analyze, logit_lens, parse_head_name,
                                            validate_heads)

from .greedy import assert_same_argmax
from .numerics import EPS, logit_drift, near_exact, probs_close
from .pretrained_models import ours, reference

pytestmark = pytest.mark.slow
# Ours against transformers runs the same arithmetic (SmolLM2 in the row-major layout: bit-identical where
# measured; MiniLM a few EPS apart): on probabilities and unit vectors (<= 1) 1e-4 is ~840 EPS, above any CPU's
# rounding of that arithmetic and far below what a wrong head, layer or token would change.
ATOL = 1e-4


@pytest.fixture(scope="module")
def smollm():
    pm = ours("smollm2-135m", layout="row")  # the same sums in the same order as transformers (see ours)
    enc = pm.encode("The Eiffel Tower is in the city of", max_tokens=MAX_TOKENS)
    return pm, reference("smollm2-135m"), enc, analyze(pm, enc)


@pytest.fixture(scope="module")
def minilm():
    pm = ours("minilm-l6")
    enc = pm.encode("The animal didn't cross the street because it was too tired.", max_tokens=MAX_TOKENS)
    return pm, reference("minilm-l6"), enc, analyze(pm, enc)


def _zero_heads_in_hf(hf, heads, d_head):
    """transformers' reference ablation: zero the heads' slices of the input of the output projection W_O."""
    handles = []
    for layer, head in heads:
        if hasattr(hf, "model"):
            proj = hf.model.layers[layer].self_attn.o_proj
        else:
            proj = hf.encoder.layer[layer].attention.output.dense

        def pre_hook(module, args, head=head):
            x = args[0].clone()
            x[..., head * d_head:(head + 1) * d_head] = 0
            return (x,)

        handles.append(proj.register_forward_pre_hook(pre_hook))
    return handles


def _hf(hf, ids, heads=(), d_head=64, **kwargs):
    handles = _zero_heads_in_hf(hf, heads, d_head)
    try:
        with torch.no_grad():
            return hf(input_ids=ids, output_attentions=True, output_hidden_states=True, **kwargs)
    finally:
        for h in handles:
            h.remove()


def test_analyze_patterns_and_norms_match_llama(smollm):
    pm, hf, enc, run = smollm
    out = _hf(hf, enc.ids_tensor())
    assert run.patterns.shape == (30, 9, len(enc.ids), len(enc.ids))
    torch.testing.assert_close(torch.from_numpy(run.patterns), torch.cat(out.attentions), atol=ATOL, rtol=0)
    # HF's hidden_states: the embeddings, then every layer's output; its last one is after the final norm.
    norms = torch.from_numpy(residual_norms(run))
    ref = torch.stack([h[0].norm(dim=-1) for h in out.hidden_states[:-1]])
    torch.testing.assert_close(norms[:-1], ref, atol=0, rtol=near_exact(pm.config.n_layer) * EPS)
    last = out.logits[0, -1]
    assert probs_close(run.next_token_probs, torch.softmax(last, -1),
                       logit_drift(last, pm.config, near_exact_code=True).item())


def test_attention_entropy_equals_torch_categorical(smollm, minilm):
    for (pm, _, _, analysis), causal in ((smollm, True), (minilm, False)):
        ent = attention_entropy(analysis.patterns, causal=causal)
        L, H, T, S = analysis.patterns.shape
        first = 1 if causal else 0  # a causal first token sees one key only
        for layer, head in ((0, 0), (L - 1, H - 1), (L // 2, 1)):
            rows = torch.from_numpy(analysis.patterns[layer, head, first:]).double()
            visible = torch.arange(first + 1, T + 1).double() if causal else torch.full((T,), float(S)).double()
            h = torch.stack([torch.distributions.Categorical(probs=r[: int(n)]).entropy()
                             for r, n in zip(rows, visible)])
            assert ent.nats[layer, head].item() == pytest.approx(h.mean().item(), abs=1e-5)
            assert ent.normalized[layer, head].item() == pytest.approx((h / visible.log()).mean().item(), abs=1e-5)
        assert (ent.normalized >= 0).all() and (ent.normalized <= 1 + 1e-6).all()


def test_logit_lens_equals_llama_norm_and_head_on_every_layer(smollm):
    pm, hf, enc, run = smollm
    lens = logit_lens(pm, run)
    out = _hf(hf, enc.ids_tensor())
    assert lens.layers[0] == "embed" and len(lens.layers) == 31
    with torch.no_grad():
        for layer in (0, 5, 17, 29):  # hidden_states[l] is the input of layer l = our row l (embed, layer 0, ...)
            logits = hf.lm_head(hf.model.norm(out.hidden_states[layer]))[0]
            top_p = torch.softmax(logits, -1).max(-1).values
            torch.testing.assert_close(torch.from_numpy(lens.probs[layer]), top_p, atol=ATOL, rtol=0)
            # Early layers' lenses are flat: where two tokens nearly tie, either is the right answer.
            assert_same_argmax(torch.from_numpy(lens.token_ids[layer]), logits,
                               2 * logit_drift(logits, pm.config, near_exact_code=True), f"lens row {layer}")
    # The last row is the model's own prediction.
    logits = out.logits[0]
    assert_same_argmax(torch.from_numpy(lens.token_ids[-1]), logits,
                       2 * logit_drift(logits, pm.config, near_exact_code=True), "the model's prediction")
    assert lens.tokens[-1] == pm.tokenizer.token_labels(lens.token_ids[-1].tolist())


def test_logit_lens_needs_a_decoder(minilm):
    pm, _, _, run = minilm
    with pytest.raises(ValueError, match="needs a decoder"):
        logit_lens(pm, run)


def test_decoder_ablation_equals_zeroing_o_proj_inputs_in_transformers(smollm):
    pm, hf, enc, run = smollm
    heads = [(3, 2), (3, 5), (10, 0)]
    ab = ablate(pm, enc, heads, run)
    ids = enc.ids_tensor()
    before, after = _hf(hf, ids), _hf(hf, ids, heads, d_head=64)
    p_before = torch.softmax(before.logits[0, -1], -1)
    p_after = torch.softmax(after.logits[0, -1], -1)
    token_ids = ab.token_ids
    drift = max(logit_drift(x.logits[0, -1], pm.config, near_exact_code=True).item() for x in (before, after))
    assert probs_close(torch.tensor(ab.before), p_before[token_ids], drift)
    assert probs_close(torch.tensor(ab.after), p_after[token_ids], drift)
    kl = F.kl_div(p_after.log(), p_before, reduction="sum").item()  # KL(before || after)
    # KL = Σ p (log p - log q): each log moves by at most 2δ and each p by the factor e^{±2δ}, so KL by at most
    # 4δ + (e^{2δ} - 1)·Σ p |log p/q| (<= 2·KL + 1 nat here, generously).
    assert ab.metric == pytest.approx(kl, abs=4 * drift + math.expm1(2 * drift) * (2 * kl + 1))
    change = (torch.cat(after.attentions) - torch.cat(before.attentions)).abs().mean(dim=(-1, -2))
    pattern_change = torch.from_numpy(ab.pattern_change)
    torch.testing.assert_close(pattern_change, change, atol=ATOL / 10, rtol=0)  # means of values <= 1: ~84 EPS
    # Layers up to the first ablated one read an unchanged residual stream; later ones do not.
    assert pattern_change[:4].abs().max() < 1e-6 and pattern_change[4:].max() > 1e-4
    # Nothing stayed on the shared model: a plain run gives the intact prediction again.
    np.testing.assert_array_equal(analyze(pm, enc).next_token_probs, run.next_token_probs)


def test_encoder_ablation_equals_transformers_and_sentence_transformers_pooling(minilm):
    pm, hf, enc, run = minilm
    heads = [(0, 1), (2, 7)]
    compare = ["A tired dog stayed home.", "Stock prices rose."]
    ab = ablate(pm, enc, heads, run, compare=compare)
    ids = enc.ids_tensor()
    emb = lambda out: F.normalize(out.last_hidden_state[0].mean(0), dim=-1)  # noqa: E731
    before, after = emb(_hf(hf, ids)), emb(_hf(hf, ids, heads, d_head=32))
    assert ab.metric == pytest.approx(F.cosine_similarity(before, after, dim=0).item(), abs=1e-5)
    assert ab.metric < 0.9999  # zeroing two heads does move the embedding
    with pm.tokenizer.locked() as tok:
        batch = tok(compare, padding=True, return_tensors="pt")
    for heads_used, bars, mine in (((), ab.before, before), (heads, ab.after, after)):
        out = _hf(hf, batch["input_ids"], heads_used, d_head=32, attention_mask=batch["attention_mask"])
        m = batch["attention_mask"].unsqueeze(-1).float()
        others = F.normalize((out.last_hidden_state * m).sum(1) / m.sum(1), dim=-1)
        torch.testing.assert_close(torch.tensor(bars), others @ mine, atol=ATOL, rtol=0)
    assert ab.bar_labels == compare


def test_no_heads_means_no_change(minilm):
    pm, _, enc, run = minilm
    ab = ablate(pm, enc, [], run)
    assert ab.metric == pytest.approx(1.0, abs=1e-6) and np.abs(ab.pattern_change).max() < 1e-6
    assert ab.before == pytest.approx(ab.after)


def test_head_view_lines_are_the_weights_above_the_threshold(minilm):
    _, _, enc, run = minilm
    pattern = torch.from_numpy(run.patterns[2])
    lines = head_view_lines(run.patterns[2], [0, 5], min_weight=0.2)
    expected = {(h, q, k) for h in (0, 5) for q, k in (pattern[h] >= 0.2).nonzero().tolist()}
    assert {(ln.head, ln.query, ln.key) for ln in lines} == expected and expected
    assert all(ln.weight == pattern[ln.head, ln.query, ln.key].item() for ln in lines)
    # An encoder's query reads every key, and this head's smallest weight (2.4e-5) is far above the 1e-9 floor.
    every = head_view_lines(run.patterns[2], [0], min_weight=0.0)
    assert len(every) == len(enc.ids) ** 2


def test_head_names_are_validated():
    assert parse_head_name("L3.H5") == (3, 5) and parse_head_name(" l0.h1 ") == (0, 1)
    with pytest.raises(ValueError, match="write it like L3.H5"):
        parse_head_name("head five")
    assert validate_heads([(2, 1), (0, 3), (2, 1)], 6, 12) == [(0, 3), (2, 1)]
    with pytest.raises(ValueError, match="Layer 6 does not exist"):
        validate_heads([(6, 0)], 6, 12)
    with pytest.raises(ValueError, match="Head 12 does not exist"):
        validate_heads([(0, 12)], 6, 12)


# ---- the lab's settings and run ---------------------------------------------------------------------------------

MINI_TEXT = "The animal didn't cross the street because it was too tired."


class CountingSteps(Steps):
    """The direct steps, counting how often run asks for each part."""

    def __init__(self):
        self.calls: list[str] = []

    def analysis(self, model, settings):
        self.calls.append("analysis")
        return super().analysis(model, settings)

    def lens(self, model, settings, base):
        self.calls.append("lens")
        return super().lens(model, settings, base)

    def ablation(self, model, settings, base):
        self.calls.append("ablation")
        return super().ablation(model, settings, base)


def test_run_gives_every_part_of_the_encoder_from_one_analysis(minilm):
    pm, _, enc, base = minilm
    settings = InternalsSettings(model="minilm-l6", text=MINI_TEXT, layer=5, head=11, view_layer=2, view_heads=(0, 5),
                                 min_weight=0.2, ablated=((0, 1), (2, 7)), compare=("A tired dog stayed home.",))
    steps = CountingSteps()
    out = run(pm, settings, steps)
    assert out.ok and out.fallback is None and out.settings == settings
    assert steps.calls == ["analysis", "ablation"]  # an encoder has no logit lens
    r = out.result
    assert r.tokens == enc and r.lens is None and r.lens_facts is None and r.norm_facts is None
    np.testing.assert_array_equal(r.analysis.patterns, base.patterns)
    assert r.lines == head_view_lines(base.patterns[2], (0, 5), min_weight=0.2)
    np.testing.assert_array_equal(r.norms, residual_norms(base))
    ab = ablate(pm, enc, settings.ablated, base, compare=settings.compare)
    assert (r.ablation.heads, r.ablation.before, r.ablation.after) == (ab.heads, ab.before, ab.after)


def test_run_reads_the_decoder_through_the_logit_lens(smollm):
    pm, _, enc, base = smollm
    steps = CountingSteps()
    out = run(pm, InternalsSettings(text="The Eiffel Tower is in the city of"), steps)
    assert out.ok and steps.calls == ["analysis", "lens", "ablation"]
    r = out.result
    np.testing.assert_array_equal(r.lens.token_ids, logit_lens(pm, base).token_ids)
    assert r.lens_facts is not None and r.norm_facts is not None and not r.ablation.heads


@pytest.mark.parametrize("change, words, used", [
    (dict(text="   "), "Type some text first", dict(text=FALLBACK_TEXT)),
    (dict(chat=True), "not a chat model", dict(chat=False)),
    (dict(layer=6), "Layer 6 does not exist: this model has layers 0 to 5", dict(layer=5)),
    (dict(head=12), "Head 12 does not exist: every layer has heads 0 to 11", dict(head=11)),
    (dict(view_layer=-1), "layer must be a whole number", dict(view_layer=0)),
    (dict(view_heads=(3, 12)), "Head 12 does not exist", dict(view_heads=(3,))),
    (dict(ablated=((6, 0), (1, 2))), "Layer 6 does not exist", dict(ablated=((1, 2),))),
    (dict(ablated=((0, 1.5),)), "head must be a whole number", dict(ablated=())),
    (dict(compare=()), "at least one comparison sentence", dict(compare=DEFAULT_COMPARE)),
    (dict(model="smollm2-135m"), "for smollm2-135m, not for minilm-l6", dict(model="minilm-l6")),
])
def test_bad_input_is_an_error_with_the_nearest_valid_settings(minilm, change, words, used):
    pm = minilm[0]
    requested = dataclasses.replace(InternalsSettings(model="minilm-l6", text=MINI_TEXT), **change)
    out = run(pm, requested)
    assert words in out.error and out.result is not None and out.fallback
    assert out.settings == dataclasses.replace(requested, **used)
    out.settings.validate(pm)  # what is shown instead is itself valid
    assert out.result.tokens == pm.encode(out.settings.text, max_tokens=MAX_TOKENS)


def test_the_fallback_sentences_say_what_is_shown_instead(minilm):
    pm = minilm[0]
    base = InternalsSettings(model="minilm-l6", text=MINI_TEXT)
    fallback = lambda **change: run(pm, dataclasses.replace(base, **change)).fallback  # noqa: E731
    assert fallback(text="") == f"Showing the example text instead: “{FALLBACK_TEXT}”"
    assert fallback(compare=()) == "No comparison sentence: showing the default ones."
    many = tuple(f"Sentence {i}." for i in range(12))
    out = run(pm, dataclasses.replace(base, compare=many))
    assert out.settings.compare == many[:MAX_COMPARE]
    assert out.fallback == f"Comparing with the first {MAX_COMPARE} sentences."
    assert out.result.ablation.bar_labels == list(many[:MAX_COMPARE])
    assert fallback(layer=9) == "Showing layer = 5 instead."
    out = run(pm, dataclasses.replace(base, text=" ", compare=()))  # two problems: the first is the error, both fixed
    assert "Type some text first" in out.error and "example text" in out.fallback and "default ones" in out.fallback
