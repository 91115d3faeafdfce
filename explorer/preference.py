"""The losses of post-training, written out: per-token cross-entropy, KL to a reference model, DPO and GRPO.

Notation. A causal model π reads a prompt x and a completion y = (y_1 .. y_n); ``logits[:, t]`` scores the token
at position t + 1. Only the completion's tokens count (the prompt is given, not generated):

    log π(y | x) = Σ_{t=1..n} log π(y_t | x, y_<t)                      sequence log-probability

Cross-entropy per token (what SFT and pre-training minimise): CE_t = −log π(y_t | x, y_<t), torch's
F.cross_entropy(reduction="none").

KL(π ‖ π_ref) per position, three ways:

    exact:  KL_t = Σ_v π(v | ·) · (log π(v | ·) − log π_ref(v | ·))     over the whole vocabulary
    k1:     log π(y_t) − log π_ref(y_t)                                  one sampled token y_t ~ π; unbiased, can be < 0
    k3:     r − log r − 1,  r = π_ref(y_t) / π(y_t)                       unbiased too, never < 0 (Schulman 2020,
                                                                          "Approximating KL divergence"; DeepSeekMath eq. 4)

The exact one is F.kl_div(log π_ref, log π, log_target=True) summed over the vocabulary (torch's argument order is
(input = log q, target = log p) for KL(p ‖ q)). k1 and k3 are what RL trainers use, because an update only sees the
sampled tokens.

DPO (Rafailov et al. 2023, eq. 7), for a prompt with a chosen answer y_w and a rejected one y_l:

    h = β · [(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]
    L_DPO = −log σ(h)

The implicit reward of an answer is r̂(y) = β · (log π(y) − log π_ref(y)) (eq. 5 solved for the reward, up to a
term of the prompt alone); h is the margin r̂(y_w) − r̂(y_l), and the loss is small when the margin is large.

GRPO (Shao et al. 2024, DeepSeekMath, eq. 3): for one prompt, sample a group of G answers o_1 .. o_G from π_old,
score them r_1 .. r_G, and give every token of answer i the group-normalised advantage

    Â_i = (r_i − mean(r)) / (std(r) + ε)     std with Bessel's correction (G − 1), ε = 1e-4 (trl's GRPOTrainer)

then maximise, per token, the clipped surrogate minus a KL penalty to the reference:

    ρ_{i,t} = π(o_{i,t}) / π_old(o_{i,t})
    J = (1/G) Σ_i (1/|o_i|) Σ_t [ min(ρ_{i,t} Â_i, clip(ρ_{i,t}, 1 − ε_clip, 1 + ε_clip) Â_i) − β · k3_{i,t} ]

(loss = −J). An answer better than its group's mean gets Â > 0 and its tokens become more likely; a worse one
less likely. A group whose answers all score the same has Â = 0 everywhere and teaches nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRPO_STD_EPS = 1e-4  # trl's GRPOTrainer: (r − mean) / (std + 1e-4); keeps a group of equal rewards finite (Â = 0)
GRPO_CLIP_EPS = 0.2  # PPO's and DeepSeekMath's ε for the ratio's clip
GRPO_KL_BETA = 0.04  # DeepSeekMath's β for the KL penalty (Section 4.2)


# ---- per token ---------------------------------------------------------------------------------------------------

def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log π(target | ·) at every position: logits (..., V), targets (...) -> (...)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per token, −log π(target | ·): logits (..., V), targets (...) -> (...)."""
    return -token_logprobs(logits, targets)


def kl_exact(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_v p(v) (log p(v) − log q(v)) at every position: (..., V) twice -> (...)."""
    logp, logq = torch.log_softmax(logits_p.float(), -1), torch.log_softmax(logits_q.float(), -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k1 estimate of KL(π ‖ π_ref) from the sampled token's log-probabilities: log π − log π_ref."""
    return logp - logp_ref


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(π ‖ π_ref) from the sampled token's log-probabilities: r − log r − 1, r = π_ref / π."""
    log_r = logp_ref - logp
    return log_r.exp() - log_r - 1


# ---- sequences ---------------------------------------------------------------------------------------------------

def shifted(logits: torch.Tensor, tokens: torch.Tensor, completion: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The predictions lined up with what they predict: logits[:, :-1] score tokens[:, 1:]; ``completion`` (B, T)
    is True on the completion's tokens, so the returned mask is True where a completion token is predicted."""
    return logits[:, :-1], tokens[:, 1:], completion[:, 1:]


def completion_token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    """log π(y_t | x, y_<t) at every position (B, T − 1), 0 where the predicted token is not the completion's."""
    scores, targets, mask = shifted(logits, tokens, completion)
    return token_logprobs(scores, targets) * mask


def sequence_logprob(logits: torch.Tensor, tokens: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    """log π(y | x) per row (B,): the sum over the completion's tokens only."""
    return completion_token_logprobs(logits, tokens, completion).sum(-1)


# ---- DPO ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DPOTerms:
    """Every term of the DPO loss, per pair (tensors of shape (B,)), as the module docstring writes them."""

    chosen_logratio: torch.Tensor  # log π(y_w) − log π_ref(y_w)
    rejected_logratio: torch.Tensor  # log π(y_l) − log π_ref(y_l)
    chosen_reward: torch.Tensor  # β · chosen_logratio
    rejected_reward: torch.Tensor  # β · rejected_logratio
    margin: torch.Tensor  # chosen_reward − rejected_reward = h
    loss: torch.Tensor  # −log σ(h)


def dpo_terms(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
              ref_rejected: torch.Tensor, beta: float) -> DPOTerms:
    """DPO (Rafailov et al. 2023, eq. 7) from sequence log-probabilities (B,) under the policy and the reference.
    −log σ(h) is computed as −logsigmoid(h), which stays finite for a large negative h."""
    chosen = policy_chosen - ref_chosen
    rejected = policy_rejected - ref_rejected
    chosen_reward, rejected_reward = beta * chosen, beta * rejected
    margin = chosen_reward - rejected_reward
    return DPOTerms(chosen, rejected, chosen_reward, rejected_reward, margin, -F.logsigmoid(margin))


# ---- GRPO --------------------------------------------------------------------------------------------------------

def group_advantages(rewards: torch.Tensor, eps: float = GRPO_STD_EPS) -> torch.Tensor:
    """Â_i = (r_i − mean(r)) / (std(r) + ε) within one group (G,), std with Bessel's correction (as trl)."""
    rewards = rewards.float()
    std = rewards.std(unbiased=True) if rewards.numel() > 1 else rewards.new_zeros(())
    return (rewards - rewards.mean()) / (std + eps)


@dataclass(frozen=True)
class GRPOTerms:
    """The GRPO objective's pieces per token (G, T) and its loss (a scalar, −J)."""

    ratio: torch.Tensor  # ρ = π / π_old
    surrogate: torch.Tensor  # min(ρ Â, clip(ρ) Â)
    kl: torch.Tensor  # k3 estimate of KL(π ‖ π_ref)
    clipped: torch.Tensor  # True where the clipped branch is the smaller one (its gradient is 0)
    loss: torch.Tensor


def grpo_terms(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, advantages: torch.Tensor,
               mask: torch.Tensor, clip_eps: float = GRPO_CLIP_EPS, beta: float = GRPO_KL_BETA) -> GRPOTerms:
    """DeepSeekMath eq. 3 on per-token log-probabilities (G, T) of the sampled answers under the policy, the
    policy that sampled them (π_old) and the reference; ``advantages`` (G,); ``mask`` (G, T) True on answer
    tokens. Each answer's tokens are averaged, then the answers (a longer answer does not weigh more)."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - logp_old)
    adv = advantages[:, None]
    plain, clipped = ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    surrogate = torch.minimum(plain, clipped)
    kl = kl_k3(logp, logp_ref)
    per_token = surrogate - beta * kl
    per_answer = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return GRPOTerms(ratio, surrogate, kl, clipped < plain, -per_answer.mean())
