"""The real models inside the explorer core equal transformers' own implementations (eager attention, float32)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from explorer.models.pretrained import CACHE_ENV, MODEL_NAMES, cache_root, load_model, sentence_embedding

from .numerics import assert_rows_close, near_exact, pattern_scale, reordered, widest_sum
from .pretrained_models import ours, reference

pytestmark = pytest.mark.slow
# MiniLM's padded batches and pooled embeddings (values of magnitude <= ~10): ours and BERT run the same arithmetic,
# measured a few EPS (~1e-6) apart, so 1e-4 is far above any CPU's rounding and far below a real mistake.
ATOL = 1e-4

MINILM_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need!",
    "Transformers read 12345 tokens, émigrés and 日本語 alike.",
]
SMOLLM_TEXTS = [
    "The capital of France is",
    "def fibonacci(n):\n    return",
    "Attention weights show which earlier tokens each token reads; "
    "the residual stream carries everything else forward through thirty layers.",
]


@pytest.fixture(scope="module")
def minilm():
    return ours("minilm-l6"), reference("minilm-l6")


@pytest.fixture(scope="module")
def smollm():
    """Ours in the row-major layout: the same sums in the same order as transformers (see pretrained_models.ours)."""
    return ours("smollm2-135m", layout="row"), reference("smollm2-135m")


def _hf_forward(hf, **kwargs):
    with torch.no_grad():
        return hf(**kwargs, output_attentions=True, output_hidden_states=True)


@pytest.mark.parametrize("text", MINILM_TEXTS)
def test_minilm_hidden_states_and_attention_match_bert(minilm, text):
    pm, hf = minilm
    ids = pm.encode(text).ids_tensor()
    _, cache = pm.model.run_with_cache(ids)
    out = _hf_forward(hf, input_ids=ids)
    assert_rows_close(cache["embed.out"], out.hidden_states[0], near_exact(1), "embed.out")
    for i in range(pm.config.n_layer):
        assert_rows_close(cache[f"blocks.{i}.resid_post"], out.hidden_states[i + 1], near_exact(i + 1),
                          f"blocks.{i}.resid_post")
        assert_rows_close(cache[f"blocks.{i}.attn.pattern"], out.attentions[i], near_exact(i + 1),
                          f"blocks.{i}.attn.pattern",
                          scale=pattern_scale(cache[f"blocks.{i}.attn.scores"], cache[f"blocks.{i}.attn.pattern"]))
    assert_rows_close(cache["final"], out.last_hidden_state, near_exact(pm.config.n_layer), "final")


def test_minilm_sentence_pairs_and_padding_match_bert(minilm):
    """Segment B embeddings (token_type_ids = 1) and a padded batch with an attention mask."""
    pm, hf = minilm
    with pm.tokenizer.locked() as tok:
        batch = tok(["Where is the cat?", "A much longer question about where the small cat went."],
                    ["On the mat.", "It sat on the mat."], padding=True, return_tensors="pt")
    assert (batch["token_type_ids"] == 1).any() and (batch["attention_mask"] == 0).any()
    _, cache = pm.model.run_with_cache(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                                       attention_mask=batch["attention_mask"])
    out = _hf_forward(hf, **batch)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(cache["final"][real], out.last_hidden_state[real], atol=ATOL, rtol=0)
    for i in range(pm.config.n_layer):
        torch.testing.assert_close(cache[f"blocks.{i}.attn.pattern"], out.attentions[i], atol=ATOL, rtol=0)


def test_minilm_sentence_embedding_is_the_mean_pooled_normalised_hidden_state(minilm):
    pm, hf = minilm
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    with pm.tokenizer.locked() as tok:
        batch = tok(texts, padding=True, return_tensors="pt")
    _, cache = pm.model.run_with_cache(batch["input_ids"], names=["final"], attention_mask=batch["attention_mask"])
    emb = sentence_embedding(cache["final"], batch["attention_mask"])
    ref_hidden = _hf_forward(hf, **batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = F.normalize((ref_hidden * mask).sum(1) / mask.sum(1), dim=-1)  # sentence-transformers' Pooling + Normalize
    torch.testing.assert_close(emb, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    # Real weights put the two guitar sentences closer to each other than to the stock market.
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[1, 2]


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
@pytest.mark.parametrize("text", SMOLLM_TEXTS)
def test_smollm2_logits_and_attention_match_llama(smollm, text, chat):
    pm, hf = smollm
    n_layer = pm.config.n_layer
    ids = pm.encode(text, chat=chat).ids_tensor()
    logits, cache = pm.model.run_with_cache(ids, names=_PATTERNS_AND_RESIDUALS)
    out = _hf_forward(hf, input_ids=ids)
    assert_rows_close(logits, out.logits, near_exact(n_layer + 1), "logits")
    for i in range(n_layer):
        assert_rows_close(cache[f"blocks.{i}.attn.pattern"], out.attentions[i], near_exact(i + 1),
                          f"blocks.{i}.attn.pattern", scale=_pattern_scale(cache, i))
    for i in range(n_layer - 1):  # HF's last hidden state is after the final norm
        assert_rows_close(cache[f"blocks.{i}.resid_post"], out.hidden_states[i + 1], near_exact(i + 1),
                          f"blocks.{i}.resid_post")


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
@pytest.mark.parametrize("text", SMOLLM_TEXTS)
def test_smollm2_decode_layout_matches_row_major(text, chat):
    """The layout the app serves computes the same model: its sums run in another order, so it drifts from the
    row-major model by rounding only (the reordering bound of tests/numerics.py, per row and per depth)."""
    row, dec = ours("smollm2-135m", layout="row"), ours("smollm2-135m")
    assert row.model.stack.blocks[0].mlp.W_out.weight.is_contiguous()
    assert not dec.model.stack.blocks[0].mlp.W_out.weight.is_contiguous(), "the app's layout is column-major"
    cfg, k = row.config, widest_sum(row.config)
    ids = row.encode(text, chat=chat).ids_tensor()
    expected_logits, expected = row.model.run_with_cache(ids, names=_PATTERNS_AND_RESIDUALS)
    logits, cache = dec.model.run_with_cache(ids, names=_PATTERNS_AND_RESIDUALS)
    for i in range(cfg.n_layer):
        assert_rows_close(cache[f"blocks.{i}.resid_post"], expected[f"blocks.{i}.resid_post"], reordered(i + 1, k),
                          f"blocks.{i}.resid_post")
        assert_rows_close(cache[f"blocks.{i}.attn.pattern"], expected[f"blocks.{i}.attn.pattern"],
                          reordered(i + 1, k), f"blocks.{i}.attn.pattern", scale=_pattern_scale(expected, i))
    assert_rows_close(logits, expected_logits, reordered(cfg.n_layer + 1, k), "logits")


def _PATTERNS_AND_RESIDUALS(name: str) -> bool:
    return name.endswith(("attn.scores", "attn.pattern", "resid_post"))


def _pattern_scale(cache, i: int):
    return pattern_scale(cache[f"blocks.{i}.attn.scores"], cache[f"blocks.{i}.attn.pattern"])


def test_smollm2_config_is_the_llama_architecture(smollm):
    pm, hf = smollm
    cfg, ref = pm.config, hf.config
    assert (cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.d_ff, cfg.vocab_size) == (
        ref.num_hidden_layers, ref.hidden_size, ref.num_attention_heads, ref.num_key_value_heads,
        ref.intermediate_size, ref.vocab_size)
    assert cfg.attention_kind == "GQA" and cfg.positional == "rope" and cfg.activation == "swiglu"
    assert pm.model.lm_head.weight is pm.model.stack.embed.tok.weight  # tied, as in the checkpoint
    assert sum(p.numel() for p in pm.model.parameters()) == sum(p.numel() for p in hf.parameters())
    assert ref.eos_token_id in pm.eos_token_ids


def test_smollm2_chat_prompt_is_the_chat_template(smollm):
    pm, _ = smollm
    text = pm.tokenizer.chat_text("Hello!")
    with pm.tokenizer.locked() as tok:
        expected = tok.apply_chat_template([{"role": "user", "content": "Hello!"}], tokenize=False,
                                           add_generation_prompt=True)
        expected_ids = tok(expected, add_special_tokens=False)["input_ids"]
    assert text == expected and "<|im_start|>user" in text
    assert pm.tokenizer.chat_ids("Hello!") == list(expected_ids)
    assert pm.tokenizer.decode(pm.tokenizer.chat_ids("Hello!")) == expected


def test_second_load_reads_the_safetensors_cache():
    ours("smollm2-135m")  # converts the GGUF if no test before this one did (any order, any cache on disk)
    pm = load_model("smollm2-135m", device="cpu")
    assert pm.from_cache and pm.source.startswith(str(cache_root()))
    assert any(cache_root().glob("smollm2-135m-*/model.safetensors"))


def test_an_empty_cache_is_filled_by_the_first_load(monkeypatch, tmp_path):
    """A fresh machine: the first load converts the GGUF into the cache folder, the next one reads it, and both
    hold the same weights."""
    root = tmp_path / "empty-cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    try:
        first = load_model("smollm2-135m", device="cpu")
        assert not first.from_cache and Path(first.source).parent == root
        second = load_model("smollm2-135m", device="cpu")
        assert second.from_cache and second.source == first.source
        a, b = first.model.state_dict(), second.model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
        assert [p.name for p in root.iterdir()] == [Path(first.source).name]  # no scratch folder left behind
    finally:
        shutil.rmtree(root, ignore_errors=True)  # 540 MB: not kept among pytest's last temporary folders


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFORMER_EXPLORER_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"


def test_encode_validates_and_caps():
    pm = ours("minilm-l6")
    with pytest.raises(ValueError, match="Type some text"):
        pm.encode("   ")
    with pytest.raises(ValueError, match="not a chat model"):
        pm.encode("hello", chat=True)
    enc = pm.encode("word " * 40, max_tokens=10)
    assert enc.truncated and enc.n_original == 42 and len(enc.ids) == len(enc.labels) == 10
    assert enc.labels[0] == "[CLS]" and enc.labels[-1] == "[SEP]"
    with pytest.raises(ValueError, match="Unknown model"):
        load_model("gpt-5")
    assert set(MODEL_NAMES) == {"minilm-l6", "smollm2-135m"}


def test_tokenizer_is_safe_to_share_between_threads():
    tok = ours("smollm2-135m").tokenizer
    texts = [f"Sentence number {i} about attention heads and residual streams." * 3 for i in range(16)]
    expected = [tok.token_labels(tok.encode(t)) for t in texts]
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = tok.token_labels(tok.encode(texts[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(16)] == expected


def test_token_labels_show_the_bytes_of_split_characters():
    """Byte-level BPE splits a Chinese character over several tokens: their labels carry the raw bytes, and all
    labels together spell the text again."""
    tok = ours("smollm2-135m").tokenizer
    text = "注意力 is attention, 日本語 too"
    labels = tok.token_labels(tok.encode(text))
    assert any(label.startswith("‹") for label in labels)
    spelled = b"".join(bytes.fromhex(label[1:-1]) if label.startswith("‹") else label.encode() for label in labels)
    assert spelled == text.encode()
    bert = ours("minilm-l6").tokenizer
    ids = bert.encode("Embeddings of 注意力")
    with bert.locked() as raw:  # WordPiece pieces are shown as the vocabulary writes them
        pieces = raw.convert_ids_to_tokens(ids)
    assert bert.token_labels(ids) == pieces
