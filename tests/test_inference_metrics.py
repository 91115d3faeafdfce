"""explorer.metrics against independent references: BLEU against sacrebleu, ROUGE against Google's rouge-score,
perplexity against torch's cross_entropy token by token and against transformers' own loss on SmolLM2."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.config import ModelConfig
from explorer.metrics import (
    SMOOTHING, bleu_tokens, corpus_bleu, longest_common_subsequence, perplexity, rouge, rouge_tokens, sentence_bleu,
    windows,
)
from explorer.model import Transformer

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

# sacrebleu reports in percent with float64 sums of logs over 4 orders: the same formula in another order of
# additions differs by a few ulps of 100, far under 1e-9
BLEU_ATOL = 1e-9
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", ",", ".", "attention", "is", "all", "you", "need",
         "3.14", "1,000", "(", ")", "Q", "K", "V", "注", "意", "力", "机", "制", "，", "。", "“", "”", "—"]


def _sentence(rng: random.Random, low: int = 0, high: int = 14) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words) if rng.random() < 0.5 else "".join(words)


def _pair(rng: random.Random) -> tuple[str, list[str]]:
    """A hypothesis and 1 to 3 references: half unrelated random sentences, half a reference with words dropped,
    replaced and repeated (a translation that is partly right, so the higher orders match too)."""
    if rng.random() < 0.5:
        return _sentence(rng), [_sentence(rng, 1) for _ in range(rng.randint(1, 3))]
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 16))]
    hyp = []
    for w in words:
        roll = rng.random()
        hyp += [] if roll < 0.15 else [rng.choice(WORDS)] if roll < 0.3 else [w, w] if roll < 0.4 else [w]
    sep = " " if rng.random() < 0.5 else ""
    return sep.join(hyp), [sep.join(words)] + [_sentence(rng, 1) for _ in range(rng.randint(0, 2))]


def _tokenize(*texts: str) -> str:
    """The tokenizer an evaluation would give sacrebleu: zh for Chinese text (written here independently of
    explorer.metrics.bleu_tokenizer: any character of the CJK blocks this test's words use)."""
    return "zh" if any("\u3000" <= c <= "\u9fff" or "\u2010" <= c <= "\u201f" or "\uff00" <= c <= "\uffef"
                       for t in texts for c in t) else "13a"


def _sacre_sentence(hyp: str, refs: list[str], smooth: str):
    return sacrebleu.sentence_bleu(hyp, refs, smooth_method=smooth, tokenize=_tokenize(hyp, *refs))


# ---- tokens ----------------------------------------------------------------------------------------------------------

def test_bleu_tokens_split_as_sacrebleu_zh_and_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    zh, t13a = TokenizerZh(), Tokenizer13a()
    rng = random.Random(0)
    texts = [_sentence(rng) for _ in range(300)] + [
        "注意力（attention）函数可以被描述为：将一个查询“query”—— 3.14, 1,000…", "Don't stop-3 at 1.5.", "&amp; <skipped> x",
        "Attention(Q, K, V) = softmax(QK^T/sqrt(d_k))V", "", "   ", "残差连接就是把每个子层的输入直接加到子层输出上"]
    for text in texts:
        assert bleu_tokens(text, "zh") == zh(text).split(), text
        assert bleu_tokens(text, "13a") == t13a(text).split(), text
    assert bleu_tokens("It is 3.", "13a") == ["It", "is", "3", "."] and bleu_tokens("It is 3.", "zh")[-1] == "3."


def test_rouge_tokens_match_rouge_score_on_english_and_keep_chinese_characters():
    from rouge_score.tokenize import tokenize

    for text in ["The cat, the MAT!", "e.g. 3.14 isn't x_y", "", "Attention(Q, K, V) = softmax(QK^T)V"]:
        assert rouge_tokens(text) == tokenize(text, None)
    assert rouge_tokens("注意力，机制。Attention!") == ["注", "意", "力", "机", "制", "attention"]


# ---- BLEU ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("smooth", SMOOTHING)
def test_sentence_bleu_matches_sacrebleu_on_random_pairs(smooth):
    rng = random.Random(SMOOTHING.index(smooth))
    for _ in range(200):
        hyp, refs = _pair(rng)
        ours, ref = sentence_bleu(hyp, refs, smooth), _sacre_sentence(hyp, refs, smooth)
        raw = _sacre_sentence(hyp, refs, "none")  # sacrebleu reports add-k's counts with k added in
        assert list(ours.counts.matches) == raw.counts and list(ours.counts.totals) == raw.totals, (hyp, refs)
        assert (ours.counts.hyp_len, ours.counts.ref_len) == (ref.sys_len, ref.ref_len), (hyp, refs)
        assert ours.brevity_penalty == pytest.approx(ref.bp, abs=1e-12)
        assert ours.score == pytest.approx(ref.score, abs=BLEU_ATOL), (hyp, refs)


@pytest.mark.parametrize("smooth", SMOOTHING)
def test_corpus_bleu_matches_sacrebleu(smooth):
    rng = random.Random(7)
    pairs = [_pair(rng) for _ in range(40)]
    hyps, refs = [h for h, _ in pairs], [r[:1] for _, r in pairs]
    ours = corpus_bleu(hyps, refs, smooth)
    ref = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]], smooth_method=smooth,
                                tokenize=_tokenize(*hyps, *(r[0] for r in refs)))
    assert ours.tokenize == "zh"
    if smooth != "add-k":  # whose reported counts have k added in
        assert list(ours.counts.matches) == ref.counts and list(ours.counts.totals) == ref.totals
    assert ours.score == pytest.approx(ref.score, abs=BLEU_ATOL)
    # corpus BLEU pools the counts: it is not the mean of the sentence scores
    mean = np.mean([sentence_bleu(h, r, smooth).score for h, r in zip(hyps, refs)])
    assert abs(ours.score - mean) > 0.1


def test_bleu_edge_cases():
    exact = sentence_bleu("The cat sat on the mat.", ["The cat sat on the mat."])
    assert exact.score == pytest.approx(100.0) and exact.brevity_penalty == 1.0
    empty = sentence_bleu("", ["The cat sat on the mat."])
    assert empty.score == 0.0 and empty.counts.hyp_len == 0 and empty.brevity_penalty == 0.0
    assert empty.score == _sacre_sentence("", ["The cat sat on the mat."], "exp").score
    none = sentence_bleu("dogs run", ["The cat sat on the mat."], "none")
    assert none.score == 0.0 and none.counts.matches == (0, 0, 0, 0)
    # clipping: "the the the" gets credit for "the" only as often as a reference has it
    clipped = sentence_bleu("the the the the", ["the cat on the mat"], "none")
    assert clipped.counts.matches[0] == 2 and clipped.ngrams[0][0].in_hypothesis == 4
    assert clipped.ngrams[0][0].clipped == 2
    zh = sentence_bleu("注意力机制", ["注意力机制"])
    assert zh.score == pytest.approx(100.0) and zh.hyp_tokens == ("注", "意", "力", "机", "制")
    assert zh.tokenize == "zh" and exact.tokenize == "13a"


def test_brevity_penalty_uses_the_closest_reference_length():
    b = sentence_bleu("a b c", ["a b c d e f", "a b c d"], "none")
    assert b.counts.ref_len == 4 and b.brevity_penalty == pytest.approx(math.exp(1 - 4 / 3))
    tie = sentence_bleu("a b c d e", ["a b c d", "a b c d e f"], "none")  # 4 and 6 both 1 away: the shorter
    assert tie.counts.ref_len == 4


# ---- ROUGE -----------------------------------------------------------------------------------------------------------

class _CharTokenizer:
    """For rouge-score on Chinese: every character a token (what our tokenizer does with CJK text)."""

    def tokenize(self, text):
        return [c for c in text if "\u4e00" <= c <= "\u9fff"]


def _check_rouge(hyp: str, ref: str, scorer) -> None:
    ours, theirs = rouge(hyp, ref), scorer.score(ref, hyp)  # rouge-score takes (target, prediction)
    for name in ("rouge1", "rouge2", "rougeL"):
        for field, ours_value in (("precision", ours[name].precision), ("recall", ours[name].recall),
                                  ("fmeasure", ours[name].f1)):
            assert ours_value == pytest.approx(getattr(theirs[name], field), abs=1e-12), (name, field, hyp, ref)


def test_rouge_matches_rouge_score_on_random_english_pairs():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rng = random.Random(3)
    english = [w for w in WORDS if w.isascii()]
    for _ in range(300):
        hyp = " ".join(rng.choice(english) for _ in range(rng.randint(0, 15)))
        ref = " ".join(rng.choice(english) for _ in range(rng.randint(0, 15)))
        _check_rouge(hyp, ref, scorer)


def test_rouge_matches_rouge_score_on_chinese_by_characters():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_CharTokenizer())
    rng = random.Random(4)
    chars = "注意力机制残差连接的层归一化"
    for _ in range(200):
        _check_rouge("".join(rng.choice(chars) for _ in range(rng.randint(0, 12))),
                     "".join(rng.choice(chars) for _ in range(rng.randint(0, 12))), scorer)


def test_rouge_edge_cases_and_the_lcs_itself():
    assert rouge("", "the cat")["rouge1"].f1 == 0.0
    assert rouge("dogs run", "the cat")["rougeL"].f1 == 0.0
    exact = rouge("The cat sat.", "the cat sat")
    assert all(exact[n].f1 == pytest.approx(1.0) for n in ("rouge1", "rouge2", "rougeL"))
    lcs = longest_common_subsequence("a b c d e".split(), "a x c y e".split())
    assert lcs == ["a", "c", "e"]
    r = rouge("the cat is on the mat", "there is a cat on the mat")
    assert r.lcs == ("cat", "on", "the", "mat") and r["rougeL"].overlap == 4


# ---- perplexity ------------------------------------------------------------------------------------------------------

def _tiny(max_seq_len: int = 16) -> Transformer:
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, max_seq_len=max_seq_len)
    return Transformer.from_seed(cfg, 0).eval()


@pytest.mark.parametrize("n, window, stride", [(40, 16, 8), (40, 16, 16), (40, 16, 5), (16, 16, 4), (7, 16, 8),
                                               (33, 16, 1)])
def test_windows_score_every_token_once(n, window, stride):
    scored = np.zeros(n, dtype=int)
    spans = windows(n, window, stride)
    for begin, end, first in spans:
        assert end - begin <= window and begin < first
        scored[first:end] += 1
    assert scored[0] == 0 and spans[-1][1] == n
    unscored = {begin for begin, _, _ in spans[1:]} if stride == window else set()
    assert all(scored[t] == (0 if t in unscored else 1) for t in range(1, n))


@pytest.mark.parametrize("window, stride", [(16, 8), (16, 16), (16, 3), (8, 1)])
def test_perplexity_sliding_window_matches_cross_entropy_token_by_token(window, stride):
    """Each token's loss equals torch's cross_entropy of the model run on exactly the window that scores it: the
    same network on the same tokens, so only the batching of the forward differs (the float32 sums over d_model =
    32 and d_ff = 128 in another grouping: a few ulps of losses near ln(50) ≈ 4, far under 1e-5)."""
    model = _tiny()
    ids = torch.randint(0, 50, (45,), generator=torch.Generator().manual_seed(1)).tolist()
    p = perplexity(model, ids, window, stride)
    for begin, end, first in windows(len(ids), window, stride):
        for t in range(first, end):
            logits = model(torch.tensor([ids[begin:t]]))[0, -1]  # the last position predicts token t
            expected = F.cross_entropy(logits[None], torch.tensor([ids[t]])).item()
            assert p.losses[t] == pytest.approx(expected, abs=1e-5), t
            assert p.context[t] == t - begin
    assert math.isnan(p.losses[0])
    assert p.perplexity == pytest.approx(math.exp(np.nanmean(p.losses)))


def test_perplexity_of_one_token_or_none_is_nan():
    model = _tiny()
    assert math.isnan(perplexity(model, [3], 16, 8).perplexity)
    assert perplexity(model, [], 16, 8).n_scored == 0


# ---- perplexity on SmolLM2 against transformers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    from tests.hf_reference import hf_causal_lm
    from tests.pretrained_models import ours

    pm = ours("smollm2-135m")
    return pm, hf_causal_lm(pm.source)


TEXT = ("An attention function can be described as mapping a query and a set of key-value pairs to an output, "
        "where the query, keys, values, and output are all vectors.")


def _ce_bound(logits: torch.Tensor, cfg) -> torch.Tensor:
    """How far one token's cross-entropy may move between our served model (column-major decode layout) and
    transformers' row-major one: each logit by tests.numerics.reordered(depth, widest sum)·EPS of its row's
    largest |logit|, and CE = logsumexp - logit[target] moves by at most twice that."""
    from tests.numerics import EPS, reordered, row_scale, widest_sum

    return 2 * reordered(cfg.n_layer, widest_sum(cfg)) * EPS * row_scale(logits)[..., 0]


def test_smollm2_perplexity_equals_exp_of_transformers_mean_loss(smollm2):
    pm, hf = smollm2
    ids = pm.tokenizer.encode(TEXT)
    ours_p = perplexity(pm.model, ids, window=256, stride=128)
    with torch.no_grad():
        out = hf(torch.tensor([ids]), labels=torch.tensor([ids]))
    per_token = F.cross_entropy(out.logits[0, :-1], torch.tensor(ids[1:]), reduction="none").double()
    bound = _ce_bound(out.logits[0, :-1], pm.config).double()
    assert np.all(np.abs(ours_p.losses[1:] - per_token.numpy()) <= bound.numpy())
    assert ours_p.n_scored == len(ids) - 1
    # transformers' own mean loss, exponentiated: the number the course calls perplexity
    assert ours_p.perplexity == pytest.approx(math.exp(out.loss.item()), rel=math.expm1(float(bound.max())))


def test_smollm2_sliding_window_matches_the_transformers_guide_loop(smollm2):
    """Hugging Face's "Perplexity of fixed-length models" loop, on transformers' model: labels outside the new
    targets set to -100, the loss averaged over the new targets and weighted by their number."""
    pm, hf = smollm2
    ids = pm.tokenizer.encode(TEXT + " " + TEXT)
    window, stride = 24, 10
    nll_sum, n_tokens, prev_end, bound = 0.0, 0, 0, 0.0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        trg_len = end - prev_end
        x = torch.tensor([ids[begin:end]])
        labels = x.clone()
        labels[:, :-trg_len] = -100
        with torch.no_grad():
            out = hf(x, labels=labels)
        loss = out.loss
        bound = max(bound, float(_ce_bound(out.logits[0], pm.config).max()))
        valid = (labels[:, 1:] != -100).sum().item()
        nll_sum += loss.item() * valid
        n_tokens += valid
        prev_end = end
        if end == len(ids):
            break
    ours_p = perplexity(pm.model, ids, window, stride)
    assert ours_p.n_scored == n_tokens and ours_p.n_windows > 3
    # a mean of per-token losses each within ``bound``; exp turns an absolute error e into a relative one e^e - 1
    assert ours_p.mean_loss == pytest.approx(nll_sum / n_tokens, abs=bound)
    assert ours_p.perplexity == pytest.approx(math.exp(nll_sum / n_tokens), rel=math.expm1(bound))
