"""The SFT tab's library (explorer.sft, explorer.labs.posttraining_sft): the instruction set, the loss mask against
the chat template's assistant spans as transformers computes them, the masked loss against torch's
``F.cross_entropy(ignore_index=-100)``, greedy answers against a full recompute, and the fine-tune on a copy."""
import re
import types

import pytest
import torch
import torch.nn.functional as F

from explorer.config import ModelConfig
from explorer.jobs import DONE, STOPPED, Job
from explorer.labs.posttraining_sft import SftSettings, run_sft, tokens_for, trainer_for
from explorer.model import Transformer
from explorer.sft import (IGNORE_INDEX, ChatTokens, SftTrainer, TrainConfig, chat_tokens, greedy_answer,
                          instruction_set, masked_loss, relative_change, token_losses)
from tests.pretrained_models import ours

SMOL = "smollm2-135m"


def smollm2():
    return ours(SMOL)


# ---- the instruction set -------------------------------------------------------------------------------------------

def test_the_instruction_set_is_bilingual_and_the_held_out_prompts_are_never_trained_on():
    data = instruction_set()
    assert 40 <= len(data.train) <= 80 and 6 <= len(data.heldout) <= 10
    for part in (data.train, data.heldout):
        assert {e.lang for e in part} == {"zh", "en"}
        assert {e.kind for e in part} == {"definition", "arithmetic", "translation", "poem"}
        assert all(e.prompt.strip() and e.answer.strip() for e in part)
    prompts = [e.prompt for e in data.train]
    assert len(set(prompts)) == len(prompts)
    assert not {e.prompt for e in data.heldout} & set(prompts)


OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a / b}


def test_every_arithmetic_answer_is_right():
    checked = 0
    for e in instruction_set().train + instruction_set().heldout:
        if e.kind != "arithmetic":
            continue
        a, op, b = re.search(r"(\d+) ([-+×÷]) (\d+)", e.prompt).groups()
        said = re.search(r"= (\d+)", e.answer).group(1)
        assert OPS[op](int(a), int(b)) == int(said), e
        assert f"{a} {op} {b}" in e.answer, e
        checked += 1
    assert checked >= 10


# ---- the mask: the chat template's assistant spans -------------------------------------------------------------------

def generation_template(template: str) -> str:
    """SmolLM2's template with each assistant answer and its end-of-turn token wrapped in ``{% generation %}``, the
    marker transformers reads for ``return_assistant_tokens_mask`` (SmolLM2's own template has none)."""
    old = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    assert old in template, "SmolLM2's chat template changed: update this test's marker"
    new = ("{{'<|im_start|>' + message['role'] + '\n'}}{% if message['role'] == 'assistant' %}{% generation %}"
           "{{message['content'] + '<|im_end|>'}}{% endgeneration %}{% else %}{{message['content'] + '<|im_end|>'}}"
           "{% endif %}{{'\n'}}")
    return template.replace(old, new)


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("first", [0, 12, 28, 50])
def test_the_mask_is_the_chat_templates_assistant_spans(first, turns):
    pm = smollm2()
    train = instruction_set().train
    messages = [m for e in train[first:first + turns] for m in e.messages()]
    ours_ = chat_tokens(pm.tokenizer, messages)
    with pm.tokenizer.locked() as tok:
        template = generation_template(tok.chat_template)
        assert tok.apply_chat_template(messages, tokenize=False, chat_template=template) == ours_.text
        ref = tok.apply_chat_template(messages, tokenize=True, return_dict=True, chat_template=template,
                                      return_assistant_tokens_mask=True)
    assert list(ref["input_ids"]) == list(ours_.ids)
    assert [bool(m) for m in ref["assistant_masks"]] == list(ours_.in_loss)
    # and what is counted reads back as the answers, each closed by its end-of-turn token
    counted = pm.tokenizer.decode([i for i, k in zip(ours_.ids, ours_.in_loss) if k])
    assert counted == "".join(m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant")
    assert ours_.labels == [i if k else IGNORE_INDEX for i, k in zip(ours_.ids, ours_.in_loss)]


def test_a_model_without_a_chat_template_gets_the_plain_format_and_says_so():
    pm = smollm2()
    plain_tok = types.SimpleNamespace(supports_chat=False, pieces=pm.tokenizer.pieces,
                                      token_labels=pm.tokenizer.token_labels,
                                      token_bytes=pm.tokenizer.token_bytes)
    plain = types.SimpleNamespace(model=pm.model, tokenizer=plain_tok)
    example = instruction_set().train[0]
    tokens = tokens_for(plain, (example,))
    assert tokens.text == f"问：{example.prompt}\n答：{example.answer}"
    assert pm.tokenizer.decode([i for i, k in zip(tokens.ids, tokens.in_loss) if k]) == example.answer
    shown = run_sft(SftSettings(), plain)
    assert shown.ok and shown.fallback and "问" in str(shown.fallback) and not shown.result.chat


# ---- the loss ------------------------------------------------------------------------------------------------------

def test_the_masked_loss_is_cross_entropy_with_ignore_index():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 17, 50, generator=gen) * 4
    ids = torch.randint(0, 50, (3, 17), generator=gen)
    labels = torch.where(torch.rand(3, 17, generator=gen) < 0.4, ids, torch.full_like(ids, IGNORE_INDEX))
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    # float32 log-softmax over 50 logits then a mean of ~20 terms of size ~5: rounding stays near 1e-6
    torch.testing.assert_close(masked_loss(logits, labels), ref, rtol=1e-5, atol=1e-6)
    per_token = token_losses(logits, ids)
    assert torch.isnan(per_token[:, 0]).all()
    ref_each = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    torch.testing.assert_close(per_token[:, 1:], ref_each, rtol=1e-5, atol=1e-6)


def test_the_conversations_numbers_under_smollm2_are_torchs():
    pm = smollm2()
    shown = run_sft(SftSettings(example=3, turns=2), pm)
    assert shown.ok
    view = shown.result.view
    ids = torch.tensor([view.tokens.ids])
    with torch.no_grad():
        logits = pm.model(ids)
    labels = torch.tensor([view.tokens.labels])
    ref = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE_INDEX)
    every = F.cross_entropy(logits[0, :-1], ids[0, 1:])
    # the same float32 forward; the means differ in summation order only (~100 terms of size ~3)
    assert view.masked == pytest.approx(float(ref), rel=1e-5)
    assert view.unmasked == pytest.approx(float(every), rel=1e-5)
    assert view.n_counted == int((labels[0, 1:] != IGNORE_INDEX).sum()) and view.n_predicted == len(ids[0]) - 1
    assert len(shown.result.labels) == len(view.tokens.ids)


def test_a_bad_setting_is_named_and_its_default_shown():
    pm = smollm2()
    shown = run_sft(SftSettings(example=999, lr=0.5), pm)
    assert shown.error and "999" in shown.error and shown.result is not None
    assert shown.settings.example == 0 and shown.settings.lr == SftSettings().lr


# ---- greedy answers and the fine-tune, on a tiny model ------------------------------------------------------------

def tiny_base(seed: int = 0):
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=40, max_seq_len=64, positional="rope",
                      norm="rmsnorm", activation="swiglu", bias=False)
    return types.SimpleNamespace(model=Transformer.from_seed(cfg, seed).eval().requires_grad_(False))


def test_greedy_answers_with_the_cache_are_the_argmax_of_a_full_recompute():
    model = tiny_base().model
    prompt = [3, 14, 15, 9, 2, 6]
    out = greedy_answer(model, prompt, stop_ids=(), max_new_tokens=10)
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(10):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert out == seq[len(prompt):]
    assert greedy_answer(model, prompt, stop_ids=(out[0],), max_new_tokens=10) == []


def _examples(n: int = 6) -> list[ChatTokens]:
    gen = torch.Generator().manual_seed(1)
    rows = []
    for i in range(n):
        length = 10 + i
        ids = tuple(int(x) for x in torch.randint(1, 40, (length,), generator=gen))
        in_loss = tuple(j >= length // 2 for j in range(length))
        rows.append(ChatTokens("", ids, ((0, 0),) * length, in_loss, ()))
    return rows


def test_the_fine_tune_trains_a_copy_and_lowers_the_loss():
    base = tiny_base()
    frozen = {k: v.clone() for k, v in base.model.state_dict().items()}
    heldout = [[1, 2, 3], [4, 5]]
    trainer = SftTrainer(base, _examples(), heldout, TrainConfig(steps=20, batch=6, lr=3e-3, max_new_tokens=4))
    steps = list(trainer.steps())
    assert len(steps) == trainer.total
    assert [s.phase for s in steps] == ["before"] * 2 + ["train"] * 20 + ["after"] * 2
    for k, v in base.model.state_dict().items():
        assert torch.equal(v, frozen[k]), f"the shared model's {k} changed"
    train = [s for s in steps if s.phase == "train"]
    assert train[-1].loss < 0.7 * train[0].loss  # the same 6 sequences every update: it memorises them
    assert all(s.tokens == sum(sum(r.in_loss[1:]) for r in _examples()) for s in train)
    before = [s.answer for s in steps if s.phase == "before"]
    expected = [" ".join(map(str, greedy_answer(base.model, h, (), 4))) for h in heldout]
    assert before == expected and [s.prompt for s in steps if s.phase == "after"] == [0, 1]
    assert steps[-1].weight_change > 0
    # a second run reads the untouched model's answers from the process's cache: the same, at once
    again = SftTrainer(base, _examples(), heldout, TrainConfig(steps=1, batch=6, max_new_tokens=4))
    assert [s.answer for s in again.steps() if s.phase == "before"] == before


def test_relative_change_is_the_norm_of_the_difference():
    a, b = tiny_base(0).model, tiny_base(1).model
    flat = lambda m: torch.cat([p.detach().double().flatten() for p in m.parameters()])  # noqa: E731
    assert relative_change(a, b) == pytest.approx(float((flat(b) - flat(a)).norm() / flat(a).norm()), rel=1e-9)
    assert relative_change(a, a) == 0.0


def test_the_fine_tune_runs_as_a_job_in_the_training_queue_and_stops():
    from explorer.admission import AdmissionQueue

    trainer = SftTrainer(tiny_base(), _examples(), [[1, 2, 3]], TrainConfig(steps=5, batch=2, max_new_tokens=2))
    job = Job(trainer.steps, total=trainer.total, queue=AdmissionQueue(1), name="sft-test").start()
    assert job.join(60) and job.state == DONE and job.progress == (7, 7)
    slow = SftTrainer(tiny_base(), _examples(), [[1, 2, 3]], TrainConfig(steps=16, batch=2, max_new_tokens=2))
    queue = AdmissionQueue(1)
    blocker = queue.join()  # the only slot is taken: the job waits in line, and Stop takes it out
    job = Job(slow.steps, total=slow.total, queue=queue, name="sft-test").start()
    assert job.place() == 1
    job.stop()
    assert job.join(10) and job.state == STOPPED and job.progress[0] == 0
    blocker.leave()


def test_the_page_trains_what_it_shows():
    pm = smollm2()
    settings = SftSettings(steps=4, batch=1, lr=3e-5)
    trainer = trainer_for(settings, pm)
    data = instruction_set()
    assert trainer.config.steps == 4 and trainer.config.batch == 1 and trainer.config.lr == 3e-5
    assert len(trainer.examples) == len(data.train) and len(trainer.heldout) == len(data.heldout)
    assert trainer.heldout[0] == pm.tokenizer.chat_ids(data.heldout[0].prompt)
    assert trainer.examples[5].ids == chat_tokens(pm.tokenizer, data.train[5].messages()).ids
    assert max(len(e.ids) for e in trainer.examples) <= 128  # the fine-tune's sequences stay short on 2 cores
    assert set(pm.eos_token_ids) <= set(trainer.stop_ids) and trainer.stop_ids


def test_a_chinese_answer_is_labelled_by_its_characters_not_their_bytes():
    """SmolLM2 splits most Chinese characters into byte pieces; the chart names each piece after its character
    ('词₁/₂'), as every lab does (explorer.models.token_labels), never as raw bytes ('‹E8 AF›')."""
    pm = smollm2()
    shown = run_sft(SftSettings(), pm)
    assert shown.ok and any("\u4e00" <= ch <= "\u9fff" for ex in shown.result.examples for ch in ex.answer)
    labels = shown.result.labels
    assert len(labels) == len(shown.result.view.tokens.ids)
    assert not [label for label in labels if label.startswith("‹")]
    assert any(re.search(r"[\u4e00-\u9fff][₀-₉]+/[₀-₉]+", label) for label in labels)
