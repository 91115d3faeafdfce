"""explorer.preference against independent references: torch's functional losses for CE and KL, and the papers'
formulas written out here, element by element in float64, for DPO (Rafailov et al. 2023, eq. 7) and GRPO
(Shao et al. 2024, DeepSeekMath, eq. 3 and eq. 4; advantages as trl's GRPOTrainer normalises them). trl itself is
not the oracle: installing it would pull datasets/pyarrow/multiprocess into the app's environment.

Tolerances: float32 log-softmax over a vocabulary of up to 50 logits of size ~3 is exact to a few ulps of its
result (~1e-6 absolute); the float64 references leave the float32 rounding as the only difference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.config import PRESETS
from explorer.model import Transformer
from explorer.policy import TailPolicy
from explorer.preference import (GRPO_CLIP_EPS, GRPO_KL_BETA, GRPO_STD_EPS, dpo_terms, group_advantages,
                                 grpo_terms, kl_exact, kl_k1, kl_k3, sequence_logprob, token_ce, token_logprobs)

F32 = dict(rtol=1e-5, atol=1e-5)  # float32 log-softmax of logits ~N(0, 3²): a few ulps of values up to ~20


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_token_ce_is_torch_cross_entropy(seed):
    g = _gen(seed)
    logits = 3 * torch.randn(4, 7, 50, generator=g)
    targets = torch.randint(0, 50, (4, 7), generator=g)
    ours = token_ce(logits, targets)
    theirs = F.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1), reduction="none").view(4, 7)
    torch.testing.assert_close(ours, theirs, **F32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_kl_is_torch_kl_div_with_p_as_target(seed):
    g = _gen(seed)
    p, q = 3 * torch.randn(5, 6, 40, generator=g), 3 * torch.randn(5, 6, 40, generator=g)
    # F.kl_div(input, target) = Σ target · (log target − input): KL(p ‖ q) takes input = log q, target = log p
    theirs = F.kl_div(torch.log_softmax(q, -1), torch.log_softmax(p, -1), log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(kl_exact(p, q), theirs, **F32)
    assert (kl_exact(p, q) >= -1e-6).all() and torch.allclose(kl_exact(p, p), torch.zeros(5, 6), atol=1e-6)


def test_k1_and_k3_estimate_the_exact_kl_from_samples():
    """Both are unbiased for tokens drawn from π: the mean over 200k draws lands on the exact KL (the standard
    error of a mean of 200k draws with variance ≲ 1 is ≲ 0.003; 0.01 is three of them)."""
    g = _gen(7)
    logits_p, logits_q = torch.randn(30, generator=g), torch.randn(30, generator=g)
    logp, logq = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    draws = torch.multinomial(logp.exp(), 200_000, replacement=True, generator=g)
    exact = float(kl_exact(logits_p, logits_q))
    assert abs(float(kl_k1(logp[draws], logq[draws]).mean()) - exact) < 0.01
    k3 = kl_k3(logp[draws], logq[draws])
    assert abs(float(k3.mean()) - exact) < 0.01 and (k3 >= 0).all()


def test_sequence_logprob_sums_the_completion_tokens_only():
    g = _gen(3)
    logits = torch.randn(2, 6, 20, generator=g)
    tokens = torch.randint(0, 20, (2, 6), generator=g)
    completion = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    ours = sequence_logprob(logits, tokens, completion)
    for b in range(2):
        logp = torch.log_softmax(logits[b].double(), -1)
        want = sum(float(logp[t - 1, tokens[b, t]]) for t in range(1, 6) if completion[b, t])
        assert math.isclose(float(ours[b]), want, abs_tol=1e-5)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_terms_are_the_papers_formula(beta):
    g = _gen(11)
    pc, pr, rc, rr = (torch.randn(16, generator=g, dtype=torch.float64) * 10 - 20 for _ in range(4))
    d = dpo_terms(pc, pr, rc, rr, beta)
    for i in range(16):
        h = beta * ((float(pc[i]) - float(rc[i])) - (float(pr[i]) - float(rr[i])))
        assert math.isclose(float(d.margin[i]), h, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(float(d.loss[i]), -math.log(1 / (1 + math.exp(-h))), rel_tol=1e-9)
        assert math.isclose(float(d.chosen_reward[i]), beta * (float(pc[i]) - float(rc[i])), rel_tol=1e-12)
    # equal log-ratios: no preference yet, the loss is log 2
    same = dpo_terms(pc, pc, rc, rc, beta)
    torch.testing.assert_close(same.loss, torch.full((16,), math.log(2), dtype=torch.float64))


def test_group_advantages_are_trl_normalisation():
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.5, 0.0, 0.5])
    r = rewards.numpy().astype(np.float64)
    want = (r - r.mean()) / (r.std(ddof=1) + GRPO_STD_EPS)
    np.testing.assert_allclose(group_advantages(rewards).numpy(), want, rtol=1e-6)
    assert torch.equal(group_advantages(torch.ones(5)), torch.zeros(5))  # a group of equal scores teaches nothing


def test_grpo_loss_is_deepseekmath_eq3():
    g = _gen(5)
    G, T = 4, 6
    logp = -torch.rand(G, T, generator=g, dtype=torch.float64) * 3
    logp_old = logp + 0.3 * torch.randn(G, T, generator=g, dtype=torch.float64)  # some ratios beyond the clip
    logp_ref = logp + 0.2 * torch.randn(G, T, generator=g, dtype=torch.float64)
    adv = torch.tensor([1.2, -0.4, 0.0, -0.8], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]],
                        dtype=torch.bool)
    terms = grpo_terms(logp, logp_old, logp_ref, adv, mask)
    eps, beta, J = GRPO_CLIP_EPS, GRPO_KL_BETA, 0.0
    for i in range(G):
        inner = 0.0
        for t in range(T):
            if not mask[i, t]:
                continue
            ratio = math.exp(float(logp[i, t]) - float(logp_old[i, t]))
            a = float(adv[i])
            surrogate = min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a)
            ref_over = math.exp(float(logp_ref[i, t]) - float(logp[i, t]))  # eq. 4: π_ref/π − log(π_ref/π) − 1
            inner += surrogate - beta * (ref_over - math.log(ref_over) - 1)
        J += inner / int(mask[i].sum())
    assert terms.clipped.any(), "the example should exercise the clip"
    assert math.isclose(float(terms.loss), -J / G, rel_tol=1e-10)


def test_grpo_gradient_raises_the_better_answers():
    """One gradient step on the surrogate alone moves each answer's log-probability in its advantage's direction."""
    logits = torch.zeros(3, 5, requires_grad=True)  # three one-token answers of a 5-token vocabulary
    targets = torch.tensor([0, 1, 2])
    logp = token_logprobs(logits, targets)[:, None]
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.5]))
    grpo_terms(logp, logp.detach(), logp.detach(), adv, torch.ones(3, 1, dtype=torch.bool)).loss.backward()
    with torch.no_grad():
        after = token_logprobs(logits - 1.0 * logits.grad, targets)
    change = (after - logp[:, 0]).detach()
    assert change[0] > 0 > change[1] and torch.sign(change).tolist() == torch.sign(adv).tolist()


def test_tail_policy_starts_as_the_reference_and_trains_only_its_own_blocks():
    base = Transformer.from_seed(PRESETS["tiny-llama"], seed=0).eval().requires_grad_(False)
    policy = TailPolicy(base, trainable=1)
    tokens = torch.randint(0, base.cfg.vocab_size, (2, 9), generator=_gen(0))
    with torch.no_grad():
        full = base(tokens)
    torch.testing.assert_close(policy.logits(tokens), full, rtol=1e-6, atol=1e-6)  # the same weights, the same ops
    torch.testing.assert_close(policy.logits(tokens, reference=True), full, rtol=1e-6, atol=1e-6)
    block = sum(p.numel() for p in base.stack.blocks[-1].parameters())
    assert policy.trainable_count() == block + sum(p.numel() for p in base.stack.ln_final.parameters())
    before = [p.clone() for p in base.parameters()]
    loss = policy.logits(tokens)[:, -1].logsumexp(-1).sum()
    loss.backward()
    with torch.no_grad():
        for p in policy.parameters():
            p -= 0.1 * p.grad
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters())), "the shared model was written"
    assert not torch.allclose(policy.logits(tokens), full)


def test_tail_policy_sampling_is_seeded_and_matches_its_cache_free_forward():
    base = Transformer.from_seed(PRESETS["tiny-llama"], seed=1).eval().requires_grad_(False)
    policy = TailPolicy(base, trainable=2)
    a = policy.sample([1, 2, 3], n=4, max_new_tokens=5, temperature=1.0, seed=3)
    assert a == policy.sample([1, 2, 3], n=4, max_new_tokens=5, temperature=1.0, seed=3)
    assert a != policy.sample([1, 2, 3], n=4, max_new_tokens=5, temperature=1.0, seed=4)
    # greedy-like temperature: each sampled token is the argmax of the full forward on the text so far
    cold = policy.sample([1, 2, 3], n=1, max_new_tokens=4, temperature=1e-4, seed=0)[0]
    text = [1, 2, 3]
    for token in cold:
        with torch.no_grad():
            assert int(policy.logits(torch.tensor([text]))[0, -1].argmax()) == token
        text.append(token)
