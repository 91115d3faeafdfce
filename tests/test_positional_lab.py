"""The positional-encoding lab: its computations against torch / transformers references, and the page's every
control through AppTest."""
import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

from explorer.config import POSITIONALS
from explorer.labs.positional import (
    PositionalSettings, alibi, attention_patterns, cosine_similarity, encoding_model, learned_table,
    permutation_experiment, rope_rotation, rope_score_by_distance, run, sinusoidal_table,
)
from explorer.models.toy_tokens import DEFAULT_SENTENCE, token_vectors, tokenize
from explorer.ui.token_chips import token_chips

SENTENCE = "dog bites man and man bites dog"


def test_similarity_matches_torch_cosine_similarity():
    table = sinusoidal_table(20, 32)
    ref = F.cosine_similarity(torch.from_numpy(table)[:, None], torch.from_numpy(table)[None], dim=-1)
    np.testing.assert_allclose(cosine_similarity(table), ref.numpy(), atol=1e-5)
    # sinusoidal similarity depends only on p - p': every diagonal is constant
    sim = cosine_similarity(table)
    assert np.allclose(np.diagonal(sim, 3), np.diagonal(sim, 3)[0], atol=1e-5)
    learned = cosine_similarity(learned_table(20, 32, seed=1))
    assert abs(np.diagonal(learned, 1)).mean() < 0.4 < np.diagonal(sim, 1).mean()


@pytest.fixture(scope="module")
def hf_rope():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    def rotate(x, positions, d_head, theta):
        cfg = LlamaConfig(hidden_size=d_head, num_attention_heads=1, rope_theta=theta,
                          max_position_embeddings=1024)
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": theta}
        emb = LlamaRotaryEmbedding(cfg)
        cos, sin = emb(x, positions[None])
        q, _ = apply_rotary_pos_emb(x[None, None], x[None, None], cos, sin)
        return q[0, 0]

    return rotate


@pytest.mark.parametrize("theta", [10_000.0, 100.0])
def test_rope_rotation_matches_transformers_llama(hf_rope, theta):
    d_head, pair, n = 16, 3, 12
    rot = rope_rotation(n, d_head, pair, theta)
    x = torch.zeros(n, d_head, dtype=torch.float64)
    x[:, pair] = 1.0
    ref = hf_rope(x.float(), torch.arange(n), d_head, theta)
    np.testing.assert_allclose(rot.points[:, 0], ref[:, pair].numpy(), atol=1e-5)
    np.testing.assert_allclose(rot.points[:, 1], ref[:, pair + d_head // 2].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.hypot(rot.points[:, 0], rot.points[:, 1]), 1.0, atol=1e-6)


def test_rope_scores_depend_on_distance_only(hf_rope):
    d_head = 32
    dist = rope_score_by_distance(d_head, 10_000.0, max_distance=40, seed=0)
    assert dist.max_offset_change < 1e-6
    ones = torch.ones(41, d_head)
    q = hf_rope(ones, torch.arange(41), d_head, 10_000.0)  # queries at 0..40
    k = hf_rope(ones[:1], torch.arange(1), d_head, 10_000.0)  # the key at 0
    np.testing.assert_allclose(dist.ones, (q @ k[0]).numpy() / d_head, atol=1e-5)
    assert dist.ones[0] == pytest.approx(1.0) and dist.ones[-1] < dist.ones[0]


def test_alibi_matches_bloom():
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    for n_head in (4, 6, 8):
        ab = alibi(n_head, 5)
        ref = build_alibi_tensor(torch.ones(1, 5), n_head, torch.float32)  # (heads, 1, 5): slope_h * j
        np.testing.assert_allclose(ab.slopes, ref[:, 0, 1].numpy(), rtol=1e-6)
        # BLOOM adds slope * j; ALiBi's -slope * (i - j) differs from it by a per-row constant (softmax ignores it)
        last_row = ab.bias[:, -1, :]
        np.testing.assert_allclose(last_row - last_row[:, -1:], ref[:, 0, :].numpy() - ref[:, 0, -1:].numpy(),
                                   atol=1e-6)
        assert np.all(np.isneginf(ab.bias[:, 0, 1:]))


def test_attention_without_positions_matches_nn_multihead_attention():
    tokens = tokenize(SENTENCE)
    model = encoding_model("none", seed=2)
    ours = attention_patterns(model, tokens, seed=2)
    attn = model.stack.blocks[0].attn
    x = model.stack.blocks[0].ln_attn(token_vectors(tokens.toy_ids, 64, 2))[None]
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attn.W_q.weight, attn.W_k.weight, attn.W_v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.W_q.bias, attn.W_k.bias, attn.W_v.bias]))
        _, ref = mha(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(ours, ref[0].detach().numpy(), atol=1e-5)


def test_shuffling_permutes_attention_only_without_positions():
    tokens = tokenize(SENTENCE)
    for encoding in POSITIONALS:
        res = permutation_experiment(encoding_model(encoding, seed=0), tokens, shuffle_seed=4)
        assert sorted(res.order) == list(range(len(tokens))) and list(res.order) != list(range(len(tokens)))
        if encoding == "none":
            assert res.max_abs_diff < 1e-5, encoding
        else:
            assert res.max_abs_diff > 1e-2, encoding


def test_models_share_weights_apart_from_the_encoding():
    a, b = encoding_model("sinusoidal", seed=0).state_dict(), encoding_model("rope", seed=0).state_dict()
    for name in b:
        assert torch.equal(a[name], b[name]), name
    assert "stack.embed.pos.weight" in encoding_model("learned", seed=0).state_dict()


@pytest.mark.parametrize("bad, match", [
    (dict(d_head=15), "RoPE rotates pairs of dimensions, so d_head \\(15\\) must be even"),
    (dict(d_head=16, pair=8), "pair must be a whole number from 0 to 7"),
    (dict(positional="wavelet"), "positional encoding must be one of sinusoidal, learned, rope, alibi, none"),
    (dict(perm_encoding="wavelet"), "encoding to switch on must be one of"),
    (dict(n_pos=0), "number of positions must be a whole number from 1 to 128"),
    (dict(alibi_heads=65), "n_head must be a whole number from 1 to 64"),
    (dict(theta=1.0), "RoPE base θ must be a number larger than 1"),
    (dict(theta=float("nan")), "RoPE base θ must be a number"),
    (dict(seed=True), "seed must be a whole number"),
])
def test_bad_settings_are_explained(bad, match):
    with pytest.raises(ValueError, match=match):
        PositionalSettings(**bad).validate()


def test_shuffling_one_token_is_explained():
    with pytest.raises(ValueError, match="at least two tokens"):
        permutation_experiment(encoding_model("none"), tokenize("hello"))


def test_bad_settings_fall_back_control_by_control():
    tokens = tokenize(SENTENCE)
    outcome = run(tokens, PositionalSettings(positional="rope", d_head=15, pair=9, theta=float("inf")))
    assert "even" in outcome.error
    assert outcome.settings == PositionalSettings(positional="rope", d_head=16, pair=7)
    assert outcome.fallback == "Showing d_head = 16, pair = 7, theta = 10000.0 instead."
    assert outcome.result.rope.rotation.pair == 7
    outcome = run(tokens, PositionalSettings(positional="wavelet", n_pos=500, seed=-3))
    assert outcome.settings == PositionalSettings(n_pos=128)
    assert outcome.result.sinusoidal.table.shape == (128, 64)
    assert run(tokens, PositionalSettings()).ok


def test_run_computes_the_chosen_encoding_only():
    tokens = tokenize(SENTENCE)
    learned = run(tokens, PositionalSettings(positional="learned", n_pos=12, d_model=16, seed=3)).result
    np.testing.assert_array_equal(learned.learned.table, learned_table(12, 16, seed=3))
    np.testing.assert_array_equal(learned.sinusoidal.table, sinusoidal_table(12, 16))
    np.testing.assert_allclose(learned.sinusoidal.similarity, cosine_similarity(sinusoidal_table(12, 16)))
    assert learned.sinusoidal.positions[:2] == (f"0 {tokens.tokens[0]}", f"1 {tokens.tokens[1]}")
    assert learned.sinusoidal.positions[-1] == "11"  # past the sentence, a plain number
    assert learned.rope is learned.alibi is learned.permutation is None
    sinus = run(tokens, PositionalSettings(positional="sinusoidal")).result
    assert sinus.learned is None and sinus.sinusoidal.table.shape == (32, 64)

    rope = run(tokens, PositionalSettings(positional="rope", d_head=16, pair=2, theta=100.0)).result.rope
    assert [c.theta for c in rope.curves] == [100.0, 10_000.0]  # the chosen θ, then the original one to compare
    np.testing.assert_array_equal(rope.curves[0].ones, rope_score_by_distance(16, 100.0, 128).ones)
    assert rope.decay.theta == 100.0 and rope.decay.d_head == 16
    assert len(rope.positions) == len(rope.rotation.points) == max(len(tokens), 8)
    assert len(run(tokens, PositionalSettings(positional="rope")).result.rope.curves) == 1

    ab = run(tokens, PositionalSettings(positional="alibi", alibi_heads=6)).result.alibi
    assert ab.bias.shape == (6, len(tokens), len(tokens)) and ab.rule.n_head == 6

    none = run(tokens, PositionalSettings(positional="none", perm_encoding="rope", shuffle_seed=4)).result
    expected = permutation_experiment(encoding_model("rope"), tokens, shuffle_seed=4)
    np.testing.assert_array_equal(none.permutation.shuffled, expected.shuffled)
    assert run(tokenize("hello"), PositionalSettings(positional="none")).result.permutation is None


def test_run_takes_the_models_from_the_caller():
    """The app hands run() its shared models (st.cache_resource): a permutation asks for the one it switches on."""
    asked = []

    def models(positional, seed, theta):
        asked.append((positional, seed, theta))
        return encoding_model(positional, seed, theta)

    run(tokenize(SENTENCE), PositionalSettings(positional="none", perm_encoding="alibi", seed=2, theta=100.0),
        model=models)
    assert asked == [("alibi", 2, 100.0)]


# ---- the page --------------------------------------------------------------------------------------------------

@pytest.fixture
def at():
    return AppTest.from_file(str(ROOT / "labs/positional.py"), default_timeout=120).run()


def figures(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def figure(at, title_start):
    found = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith(title_start)]
    assert found, f"no chart titled {title_start!r}: {[f['layout'].get('title') for f in figures(at)]}"
    return found[0]


def decode(value):
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")]).astype(float)
    return np.array(value, dtype=float)


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]


def test_sinusoidal_controls(at):
    no_errors(at)
    tokens = tokenize(DEFAULT_SENTENCE)
    assert [m.value for m in at.markdown if m.value.startswith("**Tokens:**")] == [
        "**Tokens:** " + token_chips(tokens.tokens)]
    assert decode(figure(at, "PE table")["data"][0]["z"]).shape == (32, 64)
    at.sidebar.slider(key="positional.n_pos").set_value(16).run()
    at.sidebar.select_slider(key="positional.d_model").set_value(32).run()
    no_errors(at)
    table = figure(at, "PE table")
    assert decode(table["data"][0]["z"]).shape == (16, 32)
    # positions labelled with the sentence's tokens
    assert table["data"][0]["y"][:2] == [f"0 {tokens.tokens[0]}", f"1 {tokens.tokens[1]}"]
    waves = len(figure(at, "Chosen dimensions")["data"])
    at.multiselect(key="positional.dims").set_value([0, 3]).run()
    assert len(figure(at, "Chosen dimensions")["data"]) == 2 != waves
    assert decode(figure(at, "cos(PE(p)")["data"][0]["z"]).shape == (16, 16)


def test_learned_vs_sinusoidal_and_seed(at):
    at.sidebar.radio(key="positional.positional").set_value("learned").run()
    no_errors(at)
    learned = decode(figure(at, "Learned table")["data"][0]["z"])
    figure(at, "Sinusoidal table")
    at.sidebar.number_input(key="positional.seed").set_value(3).run()
    assert not np.allclose(decode(figure(at, "Learned table")["data"][0]["z"]), learned)


def test_rope_controls(at):
    at.sidebar.radio(key="positional.positional").set_value("rope").run()
    no_errors(at)
    assert any("RoPE" in h.value for h in at.header)
    assert len(figure(at, "q·k after RoPE")["data"]) == 2
    rot_title = figure(at, "Pair 0")["layout"]["title"]["text"]
    at.sidebar.slider(key="positional.pair").set_value(5).run()
    assert figure(at, "Pair 5")["layout"]["title"]["text"] != rot_title
    at.sidebar.select_slider(key="positional.d_head").set_value(8).run()
    no_errors(at)  # 8 dimensions make 4 pairs: pair 5 is gone, and the slider starts again at pair 0
    assert at.sidebar.slider(key="positional.pair").value == 0 and figure(at, "Pair 0")
    at.sidebar.select_slider(key="positional.d_head").set_value(64).run()
    at.sidebar.select_slider(key="positional.theta").set_value(100.0).run()
    no_errors(at)
    names = [d["name"] for d in figure(at, "q·k after RoPE")["data"]]
    assert len(names) == 4 and any("θ = 100:" in n for n in names)
    curve = decode(figure(at, "q·k after RoPE")["data"][1]["y"])
    at.sidebar.select_slider(key="positional.d_head").set_value(16).run()
    no_errors(at)
    assert not np.allclose(decode(figure(at, "q·k after RoPE")["data"][1]["y"]), curve)
    assert at.sidebar.slider(key="positional.pair").max == 7  # 16 dimensions make 8 pairs


def test_alibi_controls(at):
    at.sidebar.radio(key="positional.positional").set_value("alibi").run()
    at.sidebar.slider(key="positional.alibi_heads").set_value(4).run()
    no_errors(at)
    grid = figure(at, "ALiBi bias")
    assert len(grid["data"]) == 4
    slopes = decode(figure(at, "Slopes")["data"][0]["y"])
    np.testing.assert_allclose(slopes, [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8])


def test_none_shuffle_then_switch_an_encoding_on(at):
    at.text_input(key="positional.sentence").set_value(SENTENCE).run()  # 3 tokens have few orders to shuffle into
    at.sidebar.radio(key="positional.positional").set_value("none").run()
    no_errors(at)
    assert at.success and "Same pattern, permuted" in at.success[0].value
    shuffled = [m.value for m in at.markdown if m.value.startswith("**Shuffled:**")]
    at.sidebar.number_input(key="positional.shuffle_seed").set_value(7).run()
    assert [m.value for m in at.markdown if m.value.startswith("**Shuffled:**")] != shuffled
    at.sidebar.selectbox(key="positional.perm_encoding").set_value("sinusoidal").run()
    no_errors(at)
    assert not at.success and any("patterns differ" in w.value for w in at.warning)
    before = figure(at, "Head 1")
    at.slider(key="positional.perm_head").set_value(2).run()
    assert figure(at, "Head 2")["data"][0]["z"] != before["data"][0]["z"]


def test_effect_on_attention_and_sentence(at):
    at.text_input(key="positional.sentence").set_value(SENTENCE).run()
    effect = figure(at, "Head 1 of the same layer")
    assert [a["text"] for a in effect["layout"]["annotations"]] == ["Sinusoidal", "Learned", "RoPE", "ALiBi", "None"]
    panels = [decode(d["z"]) for d in effect["data"]]
    assert not np.allclose(panels[0], panels[4])
    # without positions a repeated token gets the same row as its first occurrence; with RoPE it does not
    ids = list(tokenize(SENTENCE).toy_ids)
    again = next(i for i in range(len(ids)) if ids[i] in ids[:i])
    first = ids.index(ids[again])
    np.testing.assert_allclose(panels[4][first], panels[4][again], atol=1e-6)
    assert not np.allclose(panels[2][first], panels[2][again], atol=1e-3)
    at.slider(key="positional.effect_head").set_value(3).run()
    figure(at, "Head 3 of the same layer")
    at.text_input(key="positional.sentence").set_value("").run()
    no_errors(at)
    assert any("empty" in e.value for e in at.error) and at.warning
    at.text_input(key="positional.sentence").set_value("one two").run()
    assert figure(at, "Head 3 of the same layer")["data"][0]["x"] == list(tokenize("one two").tokens)
