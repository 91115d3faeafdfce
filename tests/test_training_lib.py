"""The training library against independent references: torch.optim.AdamW, transformers' cosine schedule,
torch.nn.utils.clip_grad_norm_, F.cross_entropy, and what a freshly initialised model must cost (ln V)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from explorer import optim, priority
from explorer.config import ModelConfig
from explorer.labs import training
from explorer.labs.training import TrainingSettings, count_params, layer_groups, param_groups, prepare
from explorer.model import Transformer

# A model small enough that 20 steps take well under a second on one core.
TINY = dict(n_layer=2, d_model=32, n_head=4, n_kv_head=2, context=16, batch_size=4, eval_every=5, sample_every=10)
LINE = "To be, or not to be, that is the question:\n"


def tiny(**changes) -> training.Trainer:
    settings = TrainingSettings(**{**TINY, **changes})
    outcome = prepare(settings)
    assert outcome.ok and outcome.settings == settings, outcome.error
    return outcome.result


def curve(trainer: training.Trainer) -> list[tuple]:
    return [(s.step, s.loss, s.val_loss, s.lr, tuple(s.grad_norms.values()), s.sample) for s in trainer.steps()]


# --- AdamW and the schedule ------------------------------------------------------------------------------------

def _model_and_batches(seed: int = 3):
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=2, vocab_size=50, max_seq_len=16)
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randint(50, (4, 17), generator=g) for _ in range(20)]
    return cfg, batches


def _train(opt_cls, steps: int, **opt_kw) -> list[torch.Tensor]:
    cfg, batches = _model_and_batches()
    model = Transformer.from_seed(cfg, 7)
    opt = opt_cls(param_groups(model, 0.1), lr=3e-3, betas=(0.8, 0.95), eps=1e-6, **opt_kw)
    for batch in batches[:steps]:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].reshape(-1)).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("steps", [1, 20])
def test_adamw_equals_torch_adamw(steps):
    ours = _train(optim.AdamW, steps)
    # torch's per-tensor loop (its CPU default) performs the same float32 operations in the same order: the results
    # are equal bit for bit, whatever the thread count (each is elementwise).
    loop = _train(torch.optim.AdamW, steps, foreach=False)
    assert all(torch.equal(a, b) for a, b in zip(ours, loop))
    # The foreach path groups the same operations differently (the bias corrections as tensors): a few float32
    # roundings per update, compounded over 20 updates of weights of size ~0.02 -> well within 1e-6 absolute.
    grouped = _train(torch.optim.AdamW, steps, foreach=True)
    for a, b in zip(ours, grouped):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(ours, _train(torch.optim.Adam, steps))), \
        "decoupled decay must differ from Adam"


@pytest.mark.parametrize("total,warmup,min_ratio", [(100, 10, 0.0), (100, 0, 0.0), (37, 5, 0.1), (5, 5, 0.0),
                                                    (300, 30, 0.1)])
def test_schedule_equals_transformers_at_every_step(total, warmup, min_ratio):
    from transformers import get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup
    peak = 3e-3
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    ref = (get_cosine_schedule_with_warmup(opt, warmup, total) if min_ratio == 0 else
           get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=min_ratio))
    expected = []
    for _ in range(total + 1):  # the lr of update 0 .. total-1, then where the schedule ends
        expected.append(ref.get_last_lr()[0])
        opt.step()
        ref.step()
    ours = optim.schedule(peak, total, warmup, min_ratio)
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15)  # the same float64 formula


def test_trainer_uses_the_schedule_it_draws_in_advance():
    trainer = tiny(steps=12, warmup=4, lr=1e-2, min_lr_ratio=0.1)
    drawn = trainer.schedule()
    assert len(drawn) == 13 and drawn[0] == 0 and max(drawn) == pytest.approx(1e-2)
    assert [s.lr for s in trainer.steps()] == drawn
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [drawn[11]] * 2  # the last update's lr


@pytest.mark.parametrize("max_norm", [0.05, 100.0])  # clipped, and left alone (the norm is ~1)
def test_grad_norms_per_layer_and_clipping_equal_clip_grad_norm(max_norm):
    cfg, batches = _model_and_batches()
    models = [Transformer.from_seed(cfg, 1) for _ in range(2)]
    for model in models:
        F.cross_entropy(model(batches[0][:, :-1]).flatten(0, 1), batches[0][:, 1:].reshape(-1)).backward()
    per_layer, total = optim.grouped_grad_norms(layer_groups(models[0]), max_norm=max_norm)
    expected = torch.nn.utils.clip_grad_norm_(models[1].parameters(), max_norm)
    # Both sum float32 squares of the same ~2e4 numbers, grouped differently: relative 1e-5 covers the rounding.
    assert total == pytest.approx(float(expected), rel=1e-5)
    assert math.sqrt(sum(v * v for v in per_layer.values())) == pytest.approx(total, rel=1e-5)
    assert list(per_layer) == ["embed", "blocks.0", "blocks.1", "final"]
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-9)


# --- the objective ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus,tokenizer", [("tangshi", "char"), ("shakespeare", "char"), ("shakespeare", "bpe")])
def test_loss_at_initialisation_is_near_ln_vocab(corpus, tokenizer):
    trainer = prepare(TrainingSettings(corpus=corpus, tokenizer=tokenizer, merges=200)).result
    view = trainer.batch_view("en")
    # GPT-2's N(0, 0.02) init makes every logit ~0.02 * |h| ~ 0.1 or less: softmax within a few percent of uniform.
    assert view.uniform_loss == pytest.approx(math.log(trainer.config.vocab_size))
    assert view.loss == pytest.approx(view.uniform_loss, rel=0.03)
    assert view.perplexity == pytest.approx(math.exp(view.loss))
    assert str(round(view.loss, 3)) in view.caption and "ln" in view.caption


def test_batch_view_shows_shifted_targets_and_per_position_cross_entropy():
    trainer = tiny(corpus="shakespeare")
    view = trainer.batch_view("zh", positions=10)
    x, y = trainer._first_batch
    assert view.targets[:-1] == view.inputs[1:]  # the target of a position is the next input
    logits = trainer.model(x)
    expected = F.cross_entropy(logits[0, :10], y[0, :10], reduction="none").detach().numpy()
    assert view.losses == pytest.approx(expected, rel=1e-5)  # float32 log-softmax of ~30 logits
    assert view.loss == pytest.approx(F.cross_entropy(logits.flatten(0, 1), y.reshape(-1)).item(), rel=1e-6)
    assert "困惑度" in view.caption
    first = next(trainer.steps())  # record 0 is the same batch under the same weights
    assert first.loss == pytest.approx(view.loss, rel=1e-6)


def test_a_repeated_line_is_learned_by_heart():
    # Every character of the line occurs once, so each one fixes the next: the loss can go to 0 at every position
    # of a window, the first included (a line with a repeated character would leave its first position uncertain).
    line = "白日依山尽，黄河入海流。\n"
    trainer = tiny(corpus="custom", text=line * 60, steps=150, lr=1e-2, warmup=10, weight_decay=0.0,
                   eval_every=150, sample_every=150, batch_size=8, context=32)
    steps = list(trainer.steps())
    assert steps[0].loss == pytest.approx(math.log(14), rel=0.03)  # 13 characters and <unk>
    assert steps[-1].loss < 0.02 and steps[-1].val_loss < 0.02
    assert line * 5 in steps[-1].sample  # the sample recites it, beyond its 32-token context (the window slides)


# --- the generator of steps ------------------------------------------------------------------------------------

def test_records_say_what_was_measured_when():
    trainer = tiny(steps=20)
    steps = list(trainer.steps())
    assert [s.step for s in steps] == list(range(21))
    assert [s.step for s in steps if s.val_loss is not None] == [0, 5, 10, 15, 20]
    assert [s.step for s in steps if s.sample is not None] == [0, 10, 20]
    assert all((s.attention is None) == (s.sample is None) for s in steps)
    att = steps[-1].attention
    assert att.weights.shape == (16, 16) and len(att.labels) == 16
    assert att.all_weights.shape == (2, 4, 16, 16)
    assert att.weights.sum(-1) == pytest.approx(1.0, abs=1e-5) and not att.weights[0, 1:].any()  # causal rows
    assert all(s.tokens_per_s > 0 for s in steps) and steps[-1].elapsed_s >= steps[0].elapsed_s
    assert set(steps[3].grad_norms) == {"embed", "blocks.0", "blocks.1", "final"}
    post = next(tiny(norm_position="post").steps()).grad_norms  # no final norm, the head tied: no "final" bar
    assert list(post) == ["embed", "blocks.0", "blocks.1"] and all(v > 0 for v in post.values())


def test_a_sample_slides_past_the_context():
    from explorer.labs.training_views import sample
    trainer = tiny(corpus="shakespeare")  # context 16, characters as tokens
    prompt = trainer.tokenizer.encode("From fairest")
    text = sample(trainer.model, trainer.tokenizer, prompt, 40, seed=0)
    assert text.startswith("From fairest") and len(trainer.tokenizer.encode(text)) == len(prompt) + 40
    assert text == sample(trainer.model, trainer.tokenizer, prompt, 40, seed=0) != sample(
        trainer.model, trainer.tokenizer, prompt, 40, seed=1)


def test_same_seed_same_curve_other_seed_other_curve():
    assert curve(tiny(steps=15)) == curve(tiny(steps=15))
    assert curve(tiny(steps=15, seed=1)) != curve(tiny(steps=15))


def test_closing_the_generator_stops_training():
    trainer = tiny(steps=50)
    run = trainer.steps()
    seen = [next(run) for _ in range(3)]
    run.close()
    frozen = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(StopIteration):
        next(run)
    assert [s.step for s in seen] == [0, 1, 2] and trainer.next_step == 3
    assert all(torch.equal(a, b) for a, b in zip(frozen, trainer.model.parameters()))
    assert trainer.optimizer.state[next(trainer.model.parameters())]["t"] == 3


def test_stopping_and_going_on_gives_the_uninterrupted_curve():
    whole = curve(tiny(steps=12))
    trainer = tiny(steps=12)
    run = trainer.steps()
    first = [next(run) for _ in range(5)]
    run.close()
    rest = list(trainer.steps())
    assert [(s.step, s.loss) for s in first + rest] == [(c[0], c[1]) for c in whole]


def test_every_step_yields_to_interactive_work(monkeypatch):
    calls = []
    monkeypatch.setattr(priority, "yield_to_interactive", lambda *a, **k: calls.append(1) or 0.0)
    list(tiny(steps=6).steps())
    assert len(calls) == 7


def test_parameter_count_is_exact_for_every_architecture():
    for changes in ({}, dict(positional="rope", activation="swiglu", norm="rmsnorm", n_kv_head=1),
                    dict(positional="alibi", norm_position="post", n_layer=3), dict(positional="sinusoidal")):
        trainer = tiny(**changes)
        params = {id(p): p.numel() for p in trainer.model.parameters()}
        assert trainer.n_params == sum(params.values()) == count_params(trainer.config)
    cfg = tiny().config  # learned positions, GELU, LayerNorm with biases, tied head, GQA with 2 kv heads
    d, V, T, kv = cfg.d_model, cfg.vocab_size, cfg.max_seq_len, cfg.n_kv_head * cfg.d_head
    per_block = (d * d + d) + 2 * (d * kv + kv) + (d * d + d) + 2 * 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert count_params(cfg) == V * d + T * d + cfg.n_layer * per_block + 2 * d


# --- settings ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,bad,key", [
    ("corpus", "odyssey", "checks.one_of"), ("tokenizer", "words", "checks.one_of"),
    ("d_model", 66, "config.heads_divide_d_model"), ("n_kv_head", 3, "config.kv_divides_heads"),
    ("n_kv_head", 8, "config.kv_above_heads"),
    ("lr", 0.0, "training.lib.between"), ("lr", float("nan"), "checks.number"), ("beta2", 1.0, "training.lib.between"),
    ("warmup", 5001, "checks.whole_between"), ("context", 1000, "checks.whole_between"),
    ("attn_head", 4, "checks.whole_between"), ("steps", True, "checks.whole_between"),
])
def test_bad_settings_fall_back_with_a_sentence(field, bad, key):
    requested = dataclasses.replace(TrainingSettings(), **{field: bad})
    with pytest.raises(ValueError) as err:
        training.check_data(requested)
    assert err.value.args[0].key == key
    outcome = prepare(requested)
    assert outcome.error.key == key and outcome.result is not None
    assert getattr(outcome.settings, field) == getattr(TrainingSettings(), field)


def test_a_text_too_short_for_the_context_is_refused():
    outcome = prepare(TrainingSettings(corpus="custom", text="短短的一行诗。\n" * 3, context=64))
    assert outcome.error.key == "training.lib.too_few_tokens"


def test_a_batch_of_logits_beyond_the_cap_is_refused():
    outcome = prepare(TrainingSettings(corpus="tangshi", batch_size=64, context=256))
    assert outcome.error.key == "training.lib.logits_too_big"
    assert (outcome.settings.batch_size, outcome.settings.context) == (64, TrainingSettings().context)

