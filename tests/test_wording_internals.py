"""The internals lab's sentences about the real models, computed from what the page measures (issue 9, section 3),
and the SmolLM2 weights being what the pages say they are: the 4-bit release, dequantized to float32."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.labs.internals import MAX_TOKENS
from explorer.labs.internals_facts import residual_norms
from explorer.labs.internals_passes import analyze, logit_lens

from .pretrained_models import ours

pytestmark = pytest.mark.slow
TEXT = "The Eiffel Tower is in the city of"  # the lab's default SmolLM2 text


@pytest.fixture(scope="module")
def smol():
    pm = ours("smollm2-135m")
    enc = pm.encode(TEXT, max_tokens=MAX_TOKENS)
    run = analyze(pm, enc)
    return pm, enc, run, logit_lens(pm, run)


def test_residual_norm_facts_are_the_measured_norms(smol):
    from explorer.labs.internals_facts import residual_norm_facts
    _, _, run, _ = smol
    facts = residual_norm_facts(residual_norms(run), run.labels, run.patterns)
    norms = np.linalg.norm(run.resid.astype(np.float64), axis=-1)  # (L + 1, T), in float64 this time
    k = facts.token
    ratio = np.array([row[k] / np.median(np.delete(row, k)) for row in norms])
    # float32 norms of vectors up to ~2e4 long against float64 ones: 1e-5 relative is ~100 float32 ulps
    np.testing.assert_allclose(facts.ratios, ratio, rtol=1e-5)
    assert k == int(np.argmax([max(r[t] / np.median(np.delete(r, t)) for r in norms) for t in range(norms.shape[1])]))
    jump = int(np.argmax(ratio[1:] / ratio[:-1])) + 1
    assert facts.jump_row == jump and facts.before_jump == pytest.approx(ratio[:jump].max(), rel=1e-5)
    assert facts.final == pytest.approx(ratio[-1], rel=1e-5)
    text = facts.text
    assert f"{ratio[:jump].max():.0f}×" in text and f"{ratio[jump]:.0f}×" in text and f"{ratio[-1]:.1f}×" in text
    assert ("hundreds of times" in text) == (ratio.max() >= 100)
    # the sink claim: heads that put more than half of their weight on the token (queries after it, averaged)
    on_sink = run.patterns[:, :, k + 1:, k].astype(np.float64).mean(-1)
    assert facts.sink_heads == int((on_sink > 0.5).sum()) and f"{facts.sink_heads} of {on_sink.size}" in text


def test_logit_lens_facts_are_what_the_lens_shows(smol):
    from explorer.labs.internals_facts import logit_lens_facts
    pm, enc, run, lens = smol
    facts = logit_lens_facts(lens, run.ids)
    last = lens.token_ids[:, -1].tolist()
    assert last[-1] == int(run.next_token_probs.argmax())  # the lens's last row is the real prediction
    settle = len(last) - 1
    while settle > 0 and last[settle - 1] == last[-1]:
        settle -= 1
    assert facts.settles_row == settle and facts.answer == pm.tokenizer.token_labels([last[-1]])[0]
    echo = [sum(int(t) == i for t, i in zip(row.tolist(), run.ids)) for row in lens.token_ids]
    assert facts.echo_embed == echo[0] and facts.echo_layers == max(echo[1:])
    assert lens.layers[settle] in facts.text and f"'{facts.answer.strip()}'" in facts.text
    assert "upper half" not in facts.text


def test_smollm2_weights_are_the_4_bit_release(smol):
    """Each GGUF Q4_1 block of 32 weights stores 4-bit codes q and one scale d and minimum m: w = d·q + m, so a
    block of the dequantized float32 matrices holds at most 16 distinct values (Q8_0's embedding at most 256)."""
    from explorer.models.quantization import smollm2_weights
    pm = smol[0]
    facts = smollm2_weights()
    assert facts.types["Q4_1"] == 7 * pm.config.n_layer and facts.embedding_type == "Q8_0"
    assert facts.bits["Q4_1"] == 5.0 and facts.bits["Q8_0"] == 8.5
    for name, p in pm.model.named_parameters():
        if p.dim() != 2:
            continue
        blocks = p.detach().float().reshape(p.shape[0], -1, 32)
        levels = 256 if "embed" in name else 16
        sorted_ = blocks.sort(dim=-1).values
        distinct = 1 + (sorted_[..., 1:] != sorted_[..., :-1]).sum(-1)
        assert int(distinct.max()) <= levels, name
    assert "Q4_1" in facts.note and "float32" in facts.note and "4-bit" in facts.note
