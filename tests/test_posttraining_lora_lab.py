"""The LoRA tab's library: the counts tied to the sizing lab's formulas (and to the LoRA paper's GPT-3 numbers), the
settings' checks and fallbacks, and the background fine-tune on a small model: it lowers the loss, trains A and B
only, holds the optimizer state the formula says, leaves the base model as it was, and obeys the queue's Stop."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from explorer.bpe import CharTokenizer
from explorer.config import ModelConfig
from explorer.jobs import DONE, STOPPED, Job
from explorer.labs.posttraining_lora import (LoraSettings, adapter_share, counts, lora_trainer, nearest,
                                             run_lora, training_set)
from explorer.labs.training_data import TrainedTokenizer
from explorer.labs.training_io import trained_model
from explorer.lora import ADAMW_FP32_STATE_BYTES, lora_param_count
from explorer.model import Transformer
from explorer.presets import REAL_MODELS
from explorer.sft import instruction_set, masked_loss
from explorer.sizing import count_params, model_states_bytes, weight_bytes
from tests.numerics import EPS, reordered, widest_sum


def test_gpt3_175b_counts_are_the_lora_papers():
    """Hu et al. 2021, Table 4: LoRA on W_q and W_v of GPT-3 175B trains 4.7M parameters at r = 1 and 37.7M at
    r = 8 (the paper's rounded figures)."""
    assert round(lora_param_count(REAL_MODELS["GPT-3 175B"].cfg, ("q", "v"), 1) / 1e5) == 47
    assert round(lora_param_count(REAL_MODELS["GPT-3 175B"].cfg, ("q", "v"), 8) / 1e5) == 377


@pytest.mark.parametrize("preset", ["SmolLM2-135M", "LLaMA-7B", "Llama-2-70B"])
def test_memory_rows_follow_the_sizing_formulas(preset):
    cfg = REAL_MODELS[preset].cfg
    c = counts(preset, ("q", "k", "v", "o"), 16)
    n = count_params(cfg).total
    assert c.full.trainable == n and c.full.total == model_states_bytes(n).total == 16 * n
    phi = c.chosen.trainable
    d, kv = cfg.d_model, cfg.n_kv_head * cfg.d_head
    assert cfg.n_head * cfg.d_head == d
    # q and o: r·(d + d) each; k and v: r·(d + n_kv·d_head) each (grouped-query attention's narrower K, V)
    assert phi == cfg.n_layer * 16 * (2 * (d + d) + 2 * (d + kv))
    assert c.chosen.weights == weight_bytes(n, "bf16") + 2 * phi
    assert c.chosen.gradients == 2 * phi and c.chosen.optimizer == 12 * phi
    assert [row.rank for row in c.table] == [1, 2, 4, 8, 16, 32, 64]
    assert [row.rank for row in c.curve] == list(range(1, 65))
    assert all(b.lora.trainable - a.lora.trainable == phi // 16 for a, b in zip(c.curve, c.curve[1:]))  # linear in r


def test_a_rank_off_the_table_joins_it():
    assert [row.rank for row in counts("LLaMA-7B", ("q", "v"), 12).table] == [1, 2, 4, 8, 12, 16, 32, 64]


def test_bad_settings_fall_back_with_a_sentence():
    out = run_lora(LoraSettings(rank=99, preset="GPT-3 175B", targets=("q", "gate")))
    assert out.error and out.settings.rank == LoraSettings().rank
    assert out.settings.preset == "GPT-3 175B" and out.settings.targets == LoraSettings().targets
    assert out.result.preset == "GPT-3 175B"
    assert nearest(LoraSettings(targets=("k", "nope"))).targets == ("k",)
    for bad in (dict(rank=0), dict(alpha=0), dict(targets=()), dict(lr=0.5), dict(steps=1000), dict(model="gpt")):
        with pytest.raises(ValueError):
            dataclasses.replace(LoraSettings(), **bad).validate()


# ---- the fine-tune on a small model ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def tiny_model():
    """A small SwiGLU model with a character tokenizer that knows every character of the instruction set: the
    student's "trained model" in the lab, untrained here (its weights are from a seed)."""
    data = instruction_set()
    text = "".join(f"问：{e.prompt}\n答：Q: {e.prompt}\nA: {e.answer}" for e in data.train + data.heldout)
    tok = TrainedTokenizer(CharTokenizer.from_text(text))
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, n_kv_head=2, d_ff=64, vocab_size=tok.vocab_size,
                      max_seq_len=160, activation="swiglu", norm="rmsnorm", positional="rope", bias=False)
    model = Transformer.from_seed(cfg, 0)
    with torch.no_grad():
        # the seed's N(0, 0.02) table, tied to the head, caps every logit near ±0.6 whatever the hidden state: no
        # adapter could move the loss; ten times that gives the logits room, as a trained model's table has
        model.stack.embed.tok.weight.mul_(10)
    return trained_model(model, tok, name="trained")


def _mean_loss(model, examples) -> float:
    with torch.no_grad():
        return sum(float(masked_loss(model(torch.tensor([e.ids])), torch.tensor([e.labels]))) for e in examples) \
            / len(examples)


def test_the_fine_tune_lowers_the_loss_and_trains_a_and_b_only(tiny):
    settings = LoraSettings(model="trained", rank=8, alpha=16, targets=("q", "v", "up", "down"), steps=16, lr=1e-2,
                            seed=1)
    before = {n: p.detach().clone() for n, p in tiny.model.named_parameters()}
    out = lora_trainer(settings, tiny, "zh")
    assert out.ok, out.error
    trainer = out.result
    steps = list(trainer.steps())
    assert [s.phase for s in steps] == ["before"] + ["train"] * 16 + ["after"] and len(steps) == trainer.total
    assert all(s.loss > 0 for s in steps if s.phase == "train")
    # over every training pair (each batch's own loss is too noisy to compare): measured 7.08 -> 6.53
    base_loss, adapted_loss = _mean_loss(tiny.model, trainer.data.examples), _mean_loss(trainer.adapted.model,
                                                                                        trainer.data.examples)
    assert adapted_loss < 0.97 * base_loss, (base_loss, adapted_loss)
    phi = lora_param_count(tiny.config, settings.targets, settings.rank)
    assert trainer.adapted.trainable == phi
    after = steps[-1]
    assert after.optimizer_bytes == ADAMW_FP32_STATE_BYTES * phi  # measured in the optimizer == the formula
    # the adapter as safetensors: its float32 numbers and a JSON header of a few hundred bytes per tensor
    assert 4 * phi < after.adapter_bytes < 4 * phi + 300 * 2 * len(trainer.adapted.layers)
    assert 0 < adapter_share(after.adapter_bytes, sum(p.numel() for p in tiny.model.parameters())) < 100
    # the page's merge fact: W + ΔW instead of the adapter moves the logits by float32 rounding only (the bound of
    # tests/test_lora.py's merge test: sums regrouped in every block)
    bound = reordered(tiny.config.n_layer + 1, widest_sum(tiny.config)) * EPS * after.logit_scale
    assert 0 <= after.merge_diff <= bound
    assert len(after.answers.texts) == len(steps[0].answers.texts) == len(training_set(tiny, "zh").heldout_ids)
    for n, p in tiny.model.named_parameters():
        assert torch.equal(p, before[n]) and not p.requires_grad, n  # the shared model was never written


def test_a_gate_on_a_gelu_model_falls_back(tiny):
    gelu = trained_model(Transformer.from_seed(dataclasses.replace(tiny.config, activation="gelu", d_ff=64), 0),
                         tiny.tokenizer)
    out = lora_trainer(LoraSettings(model="trained", targets=("gate", "down")), gelu, "en")
    assert out.error and out.result is not None and out.settings.targets == ("down",)


def test_a_tokenizer_that_knows_too_little_is_told_so():
    tok = TrainedTokenizer(CharTokenizer.from_text("abc"))
    cfg = ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=tok.vocab_size, max_seq_len=64)
    out = lora_trainer(LoraSettings(model="trained"), trained_model(Transformer.from_seed(cfg, 0), tok), "en")
    assert out.result is None and "instruction pairs" in out.error


def test_the_job_runs_in_the_queue_and_stops(tiny):
    from explorer.admission import AdmissionQueue

    trainer = lora_trainer(LoraSettings(model="trained", steps=40, rank=2), tiny, "en").result
    assert trainer.total == 42
    job = Job(trainer.steps, total=trainer.total, queue=AdmissionQueue(1), name="lora").start()
    assert job.wait_for(lambda j: j.progress[0] >= 3, timeout=120)
    job.stop()
    assert job.join(timeout=60) and job.state == STOPPED and job.progress[0] < trainer.total
    done = Job(lora_trainer(LoraSettings(model="trained", steps=2, rank=2), tiny, "en").result.steps, total=4,
               queue=AdmissionQueue(1)).start()
    assert done.join(timeout=120) and done.state == DONE and done.progress == (4, 4)


@pytest.mark.slow
def test_a_few_updates_of_smollm2_with_its_chat_template():
    from tests.pretrained_models import ours

    smol = ours("smollm2-135m")
    out = lora_trainer(LoraSettings(steps=2, rank=4), smol, "en")
    assert out.ok and out.result.data.chat
    # every example trains on its answer only (explorer.sft's chat-template mask) and fits SmolLM2's context
    assert all(any(e.in_loss) and not all(e.in_loss) for e in out.result.data.examples)
    steps = list(out.result.steps())
    assert [s.phase for s in steps] == ["before", "train", "train", "after"]
    assert all(0 < s.loss < 20 for s in steps[1:3])
    assert steps[-1].optimizer_bytes == ADAMW_FP32_STATE_BYTES * lora_param_count(smol.config, ("q", "v"), 4)
