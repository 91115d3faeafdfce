"""The post-training lab's ``grpo`` tab: GRPO (Shao et al. 2024, DeepSeekMath; DeepSeek-R1's method) on one prompt.

Sample a group of G answers to an addition from the policy, score each with a rule (1 when the answer states the
right sum, plus 0.5 when it ends within 16 tokens), normalise the scores within the group (explorer.preference.group_advantages), and take a few
updates of the clipped objective with its KL penalty (explorer.preference.grpo_terms) on that one group. The page
shows each answer's log-probability under the policy before and after: answers above the group's mean rise, those
below fall.

The policy is SmolLM2-135M-Instruct with its last ``trainable_layers`` blocks as the student's own copy
(explorer.policy.TailPolicy); the reference is the shared frozen model, which is also π_old: the group is sampled
before any update.

``compare_methods`` is the PPO / DPO / GRPO table: what each needs and the memory that costs, from
explorer.sizing's formulas.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import torch

from ..checks import choice, whole_number
from ..i18n import Msg
from ..models.protocol import LoadedModel
from ..optim import AdamW
from ..policy import TailPolicy
from ..preference import GRPO_CLIP_EPS, GRPO_KL_BETA, GRPO_STD_EPS, group_advantages, grpo_terms, token_logprobs
from ..presets import REAL_MODELS
from ..sizing import kv_cache_bytes, model_states_bytes, weight_bytes
from .outcome import Outcome, run_lab

PROBLEMS = ("2+3", "7+5", "23+58", "45+38")
GROUPS = (4, 6, 8, 12, 16)
TEMPERATURES = (0.7, 1.0, 1.3)
MAX_UPDATES = 8
SEED_MAX = 10_000
MAX_NEW_TOKENS = 16  # an addition's answer fits; a longer ramble is cut (and still scored)
LR = 1e-4
TRAINABLE_LAYERS = 2
CHAT_PROMPT = "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"  # ChatML, no default system text
COMPARE_MODELS = ("SmolLM2-135M", "Llama-2-7B", "Llama-3-8B", "Llama-2-70B")
GENERATION_TOKENS = 1024  # an answer's length assumed for the KV cache of the sampled answers


@dataclass(frozen=True)
class GRPOSettings:
    problem: str = PROBLEMS[0]
    group: int = 8
    temperature: float = 1.0
    seed: int = 0
    updates: int = 4
    compare_model: str = "Llama-3-8B"

    def validate(self) -> None:
        choice(Msg("posttraining_grpo.name.problem"), self.problem, PROBLEMS)
        choice("G", self.group, GROUPS)
        choice(Msg("posttraining_grpo.name.temperature"), self.temperature, TEMPERATURES)
        whole_number(Msg("posttraining_grpo.name.seed"), self.seed, 0, SEED_MAX)
        whole_number(Msg("posttraining_grpo.name.updates"), self.updates, 1, MAX_UPDATES)
        choice(Msg("posttraining_grpo.name.compare_model"), self.compare_model, COMPARE_MODELS)


def nearest(settings: GRPOSettings) -> GRPOSettings:
    default = GRPOSettings()
    checks = {"problem": lambda v: v in PROBLEMS, "group": lambda v: v in GROUPS,
              "temperature": lambda v: v in TEMPERATURES,
              "seed": lambda v: isinstance(v, int) and 0 <= v <= SEED_MAX,
              "updates": lambda v: isinstance(v, int) and 1 <= v <= MAX_UPDATES,
              "compare_model": lambda v: v in COMPARE_MODELS}
    return GRPOSettings(**{name: getattr(settings, name) if ok(getattr(settings, name)) else getattr(default, name)
                           for name, ok in checks.items()})


def question(problem: str) -> str:
    return f"{problem}="


def answer_of(problem: str) -> int:
    a, b = problem.split("+")
    return int(a) + int(b)


NUMBER = re.compile(r"(?<!\d)(?<!\d\.)-?\d+(?!\.?\d)")  # a whole number: "81." counts, "81.5" does not


FORMAT_REWARD = 0.5  # what finishing the answer is worth, beside 1 for the right sum (DeepSeek-R1 adds an accuracy
# reward and a format reward; a 135M model rarely adds right, so the format part keeps most groups mixed)


def correct(problem: str, answer: str) -> bool:
    """The first number the answer states after the question's own is the sum. (The answer may repeat "23+58="
    before the result; those numbers are skipped.)"""
    given = [int(x) for x in problem.split("+")]
    numbers = [int(x) for x in NUMBER.findall(answer)]
    while numbers and given and numbers[0] == given[0]:
        numbers, given = numbers[1:], given[1:]
    return bool(numbers) and numbers[0] == answer_of(problem)


def reward(problem: str, answer: str, finished: bool) -> float:
    """The rule: 1 for the right sum, plus FORMAT_REWARD when the answer ended (its end-of-turn token) within
    MAX_NEW_TOKENS."""
    return float(correct(problem, answer)) + FORMAT_REWARD * float(finished)


@dataclass(frozen=True)
class GroupAnswer:
    text: str
    n_tokens: int
    correct: bool
    finished: bool
    reward: float
    advantage: float
    logp_before: float  # log π(o | q) before the updates (= π_old = π_ref)
    logp_after: float  # after them

    @property
    def change(self) -> float:
        return self.logp_after - self.logp_before


@dataclass(frozen=True)
class GRPOResult:
    prompt: str
    answers: tuple[GroupAnswer, ...]
    mean_reward: float
    std_reward: float  # with Bessel's correction, as the advantages use it
    losses: tuple[float, ...]  # the GRPO loss before each update
    kls: tuple[float, ...]  # mean k3 KL(π ‖ π_ref) per answer token before each update
    eps: float = GRPO_STD_EPS
    clip_eps: float = GRPO_CLIP_EPS
    beta: float = GRPO_KL_BETA


def _pad(prompt: list[int], answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = len(prompt) + max(len(a) for a in answers)
    tokens = torch.tensor([prompt + a + [0] * (width - len(prompt) - len(a)) for a in answers], dtype=torch.long)
    mask = torch.tensor([[False] * len(prompt) + [True] * len(a) + [False] * (width - len(prompt) - len(a))
                         for a in answers], dtype=torch.bool)
    return tokens, mask


@dataclass(frozen=True)
class GRPOStep:
    """One step of a GRPO run: ``phase`` "sampled" (the group, scored and normalised: ``result`` without an
    "after"), "update" (the loss and KL before update ``update``) or "after" (``result`` complete)."""

    phase: str
    update: int
    loss: float | None = None
    kl: float | None = None
    result: GRPOResult | None = None


class GRPORun:
    """Sample, score, normalise, then ``settings.updates`` updates of the policy's own blocks on that one group."""

    def __init__(self, model: LoadedModel, settings: GRPOSettings):
        self.model, self.settings = model, settings
        self.policy = TailPolicy(model.model, TRAINABLE_LAYERS)
        self.optimizer = AdamW(self.policy.parameters(), lr=LR, weight_decay=0.0)

    def steps(self) -> Iterator[GRPOStep]:
        s, model, policy = self.settings, self.model, self.policy
        prompt = model.tokenizer.encode(CHAT_PROMPT.format(question=question(s.problem)), add_special_tokens=False)
        answers = policy.sample(prompt, s.group, MAX_NEW_TOKENS, s.temperature, s.seed,
                                stop=tuple(model.eos_token_ids))
        texts = [model.decode(a, skip_special_tokens=True) for a in answers]
        stops = set(model.eos_token_ids)
        finished = [bool(a) and a[-1] in stops for a in answers]
        rewards = torch.tensor([reward(s.problem, t, f) for t, f in zip(texts, finished)])
        adv = group_advantages(rewards)
        tokens, mask = _pad(prompt, answers)
        targets, mask = tokens[:, 1:], mask[:, 1:]
        trunk = policy.trunk(tokens)
        with torch.no_grad():  # π_old = π_ref: the group was sampled before any update
            logp_old = token_logprobs(policy.head(policy.hidden(trunk, reference=True)[:, :-1]), targets)
        before = (logp_old * mask).sum(-1).tolist()
        std = float(rewards.std(unbiased=True)) if len(rewards) > 1 else 0.0

        def result(after: list[float], losses: tuple, kls: tuple) -> GRPOResult:
            rows = tuple(GroupAnswer(t, len(a), correct(s.problem, t), done, float(r), float(x), b, f)
                         for t, a, done, r, x, b, f in zip(texts, answers, finished, rewards.tolist(), adv.tolist(),
                                                           before, after))
            return GRPOResult(question(s.problem), rows, float(rewards.mean()), std, losses, kls)

        yield GRPOStep("sampled", 0, result=result(before, (), ()))
        losses, kls = [], []
        for update in range(1, s.updates + 1):
            logp = token_logprobs(policy.head(policy.hidden(trunk)[:, :-1]), targets)
            terms = grpo_terms(logp, logp_old, logp_old, adv, mask)
            losses.append(terms.loss.item())
            kls.append(float((terms.kl.detach() * mask).sum() / mask.sum()))
            self.optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            self.optimizer.step()
            yield GRPOStep("update", update, losses[-1], kls[-1])
        with torch.no_grad():
            logp_new = token_logprobs(policy.head(policy.hidden(trunk)[:, :-1]), targets)
        yield GRPOStep("after", s.updates, result=result((logp_new * mask).sum(-1).tolist(), tuple(losses),
                                                         tuple(kls)))


def run_group(settings: GRPOSettings, model: LoadedModel) -> GRPOResult:
    """The whole run at once (tests, notebooks); the page runs GRPORun.steps in the background."""
    return [step for step in GRPORun(model, settings).steps()][-1].result


def run(settings: GRPOSettings, model: LoadedModel) -> Outcome[GRPOSettings, GRPOResult]:
    """Sample, score, normalise, update, for ``settings`` (a control that cannot be used goes back to its default,
    with a sentence saying so)."""
    return run_lab(settings, lambda s: run_group(s, model), nearest)


def checked(settings: GRPOSettings) -> Outcome[GRPOSettings, None]:
    """The settings a run will use (a control that cannot be used goes back to its default), without running."""
    return run_lab(settings, lambda s: None, nearest)


# ---- PPO vs DPO vs GRPO -------------------------------------------------------------------------------------------

METHODS = ("ppo", "dpo", "grpo")


@dataclass(frozen=True)
class MethodNeeds:
    """What one method keeps in memory to train a policy of ``n_params`` parameters, per explorer.sizing:
    trainable models take mixed-precision AdamW's 16 bytes per parameter (ZeRO paper, model_states_bytes), frozen
    ones their bf16 weights (weight_bytes), and the answers sampled during training their KV cache."""

    method: str
    reward_model: bool  # a learned reward model (PPO); GRPO's reward here is a rule, DPO has none
    value_model: bool  # a critic as large as the policy (PPO)
    reference_model: bool
    samples_per_prompt: int  # answers generated per prompt during training (DPO: none, its pairs are given)
    policy_bytes: float
    value_bytes: float
    reference_bytes: float
    reward_bytes: float
    kv_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.policy_bytes + self.value_bytes + self.reference_bytes + self.reward_bytes + self.kv_bytes


def compare_methods(model_key: str, group: int) -> tuple[MethodNeeds, ...]:
    """PPO (a reward model and a value model as large as the policy, one answer per prompt), DPO (given pairs, the
    reference only), GRPO (a group of ``group`` answers, the reference, no value model; a rule for the reward)."""
    real = REAL_MODELS[model_key]
    n = real.breakdown.total
    trained = model_states_bytes(n).total
    frozen = weight_bytes(n, "bf16")
    kv = lambda samples: kv_cache_bytes(real.cfg, samples, GENERATION_TOKENS, "bf16")  # noqa: E731
    return (
        MethodNeeds("ppo", True, True, True, 1, trained, trained, frozen, frozen, kv(1)),
        MethodNeeds("dpo", False, False, True, 0, trained, 0.0, frozen, 0.0, 0.0),
        MethodNeeds("grpo", False, False, True, group, trained, 0.0, frozen, 0.0, kv(group)),
    )


def params_of(model_key: str) -> int:
    return REAL_MODELS[model_key].breakdown.total
