"""Read a Hugging Face ``config.json`` into a ``ModelConfig``.

Each supported ``model_type`` gets a small mapping written from the matching transformers class (its attribute
names and defaults), so a partial file works the way ``AutoConfig`` would read it. What our config cannot express
but does not change the parameter count (GPT-NeoX's parallel residual, Gemma's GeGLU) is reported in ``notes``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import ModelConfig
from ..i18n import Msg


@dataclass(frozen=True)
class HFImport:
    cfg: ModelConfig
    model_type: str
    notes: tuple[Msg, ...] = field(default_factory=tuple)


# A real config.json is a few kilobytes (Llama-3's is 1 KB, Phi-3's with its RoPE factor lists 4 KB) and nests
# three or four levels (rope_scaling, quantization_config). Both limits are checked before json.loads: it
# recurses once per level and raised RecursionError, with the server's traceback, on a 2 KB file of brackets.
MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?')  # a JSON string, or an unterminated one up to the end


def nesting_depth(text: str) -> int:
    """How deeply [ ] and { } nest in JSON text, ignoring brackets inside strings; linear, never recursive."""
    depth = deepest = 0
    for ch in _STRING.sub("", text):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_config_json(text: str | bytes) -> dict:
    """The dict inside a config.json, or a ValueError that says what is wrong with the text."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ValueError(Msg("sizing.hf.too_large", kb=size / 1024, max_kb=MAX_CONFIG_BYTES // 1024))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(Msg("sizing.hf.not_utf8")) from None
    if not text or not text.strip():
        raise ValueError(Msg("sizing.hf.empty"))
    if nesting_depth(text) > MAX_CONFIG_DEPTH:
        raise ValueError(Msg("sizing.hf.too_deep", depth=MAX_CONFIG_DEPTH))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(Msg("sizing.hf.bad_json", why=err.msg, line=err.lineno, column=err.colno)) from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise ValueError(Msg("sizing.hf.long_number")) from None
    if not isinstance(data, dict):
        raise ValueError(Msg("sizing.hf.not_object"))
    return data


class _Reader:
    """Typed access to the fields of one config dict, with messages that name the config.json key."""

    def __init__(self, d: dict, model_type: str):
        self.d, self.model_type = d, model_type

    def get(self, key: str, default: Any = None) -> Any:
        value = self.d.get(key, default)
        return default if value is None else value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if value is None:
            raise ValueError(Msg("sizing.hf.needs", model_type=self.model_type, key=key))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(Msg("sizing.hf.whole", key=key, got=repr(value)))
        if value < 1:
            raise ValueError(Msg("sizing.hf.at_least_1", key=key, got=value))
        return value

    def float(self, key: str, default: float) -> float:
        return self.float_value(key, self.get(key, default))

    def bool(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ValueError(Msg("sizing.hf.bool", key=key, got=repr(value)))
        return value

    def _rope(self) -> dict:
        # transformers 5 writes {"rope_parameters": {...}}; older files "rope_scaling" and top-level keys.
        params = self.d.get("rope_parameters") or self.d.get("rope_scaling") or {}
        return params if isinstance(params, dict) else {}

    def rope_theta(self, default: float = 10000.0, legacy_key: str = "rope_theta") -> float:
        if self._rope().get("rope_theta") is not None:
            return self.float_value("rope_parameters.rope_theta", self._rope()["rope_theta"])
        return self.float(legacy_key, default)

    def rope_type(self) -> str:
        """'default' for plain RoPE; anything else ('linear', 'llama3', 'yarn', ...) rescales the positions."""
        return str(self._rope().get("rope_type") or self._rope().get("type") or "default")

    def float_value(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(Msg("sizing.hf.number", key=key, got=repr(value)))
        return float(value)

    def partial_rotary(self, default: float = 1.0) -> float:
        params = self.d.get("rope_parameters") or {}
        if isinstance(params, dict) and params.get("partial_rotary_factor") is not None:
            return float(params["partial_rotary_factor"])
        for key in ("partial_rotary_factor", "rotary_pct"):
            if self.d.get(key) is not None:
                return float(self.d[key])
        return default


_GELU = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
         "relu": "relu"}


def _activation(r: _Reader, key: str, default: str) -> str:
    name = r.get(key, default)
    if name not in _GELU:
        raise ValueError(Msg("sizing.hf.activation", key=key, got=repr(name), choices=", ".join(_GELU)))
    return _GELU[name]


def _gpt2(r: _Reader, notes: list[str]) -> dict:
    d = r.int("n_embd", 768)
    return dict(arch="decoder", n_layer=r.int("n_layer", 12), d_model=d, n_head=r.int("n_head", 12),
                d_ff=r.int("n_inner", 4 * d), vocab_size=r.int("vocab_size", 50257),
                max_seq_len=r.int("n_positions", 1024), activation=_activation(r, "activation_function", "gelu_new"),
                norm="layernorm", norm_position="pre", positional="learned", mask="causal", bias=True,
                tie_embeddings=r.bool("tie_word_embeddings", True), norm_eps=r.float("layer_norm_epsilon", 1e-5))


def _openai_gpt(r: _Reader, notes: list[str]) -> dict:
    # GPT-1 keeps the original post-norm block (no final norm); its "gelu" is the tanh approximation.
    d = r.int("n_embd", 768)
    act = r.get("afn", "gelu")
    if act not in ("gelu", "relu"):
        raise ValueError(Msg("sizing.hf.activation", key="afn", got=repr(act), choices="gelu, relu"))
    return dict(arch="decoder", n_layer=r.int("n_layer", 12), d_model=d, n_head=r.int("n_head", 12), d_ff=4 * d,
                vocab_size=r.int("vocab_size", 40478), max_seq_len=r.int("n_positions", 512),
                activation="gelu_tanh" if act == "gelu" else "relu", norm="layernorm", norm_position="post",
                positional="learned", mask="causal", bias=True, tie_embeddings=r.bool("tie_word_embeddings", True),
                norm_eps=r.float("layer_norm_epsilon", 1e-5))


def _bert(r: _Reader, notes: list[str]) -> dict:
    kind = r.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(Msg("sizing.hf.relative_positions", got=repr(kind)))
    defaults = {"bert": (30522, 512, 2), "roberta": (50265, 514, 1)}[r.model_type]
    if r.model_type == "roberta":
        notes.append(Msg("sizing.hf.note_roberta"))
    return dict(arch="encoder", n_layer=r.int("num_hidden_layers", 12), d_model=r.int("hidden_size", 768),
                n_head=r.int("num_attention_heads", 12), d_ff=r.int("intermediate_size", 3072),
                vocab_size=r.int("vocab_size", defaults[0]), max_seq_len=r.int("max_position_embeddings", defaults[1]),
                type_vocab_size=r.int("type_vocab_size", defaults[2]), activation=_activation(r, "hidden_act", "gelu"),
                norm="layernorm", norm_position="post", positional="learned", mask="bidirectional", bias=True,
                embed_norm=True, tie_embeddings=r.bool("tie_word_embeddings", True),
                norm_eps=r.float("layer_norm_eps", 1e-12))


def _distilbert(r: _Reader, notes: list[str]) -> dict:
    if r.bool("sinusoidal_pos_embds", False):
        notes.append(Msg("sizing.hf.note_distilbert"))
    return dict(arch="encoder", n_layer=r.int("n_layers", 6), d_model=r.int("dim", 768), n_head=r.int("n_heads", 12),
                d_ff=r.int("hidden_dim", 3072), vocab_size=r.int("vocab_size", 30522),
                max_seq_len=r.int("max_position_embeddings", 512), activation=_activation(r, "activation", "gelu"),
                norm="layernorm", norm_position="post", positional="learned", mask="bidirectional", bias=True,
                embed_norm=True, tie_embeddings=r.bool("tie_word_embeddings", True), norm_eps=1e-12)


_LLAMA_LIKE_DEFAULTS = {
    # model_type: (vocab, d_model, d_ff, layers, heads, kv heads, max positions, rms eps, tied)
    "llama": (32000, 4096, 11008, 32, 32, None, 2048, 1e-6, False),
    "mistral": (32000, 4096, 14336, 32, 32, 8, 131072, 1e-6, False),
    "qwen2": (151936, 4096, 22016, 32, 32, 32, 32768, 1e-6, False),
    "phi3": (32064, 3072, 8192, 32, 32, None, 4096, 1e-5, False),
    "gemma": (256000, 3072, 24576, 28, 16, 16, 8192, 1e-6, True),
}


def _llama_like(r: _Reader, notes: list[str]) -> dict:
    t = r.model_type
    vocab, d_def, ff, layers, heads, kv, max_pos, eps, tied = _LLAMA_LIKE_DEFAULTS[t]
    d, n_head = r.int("hidden_size", d_def), r.int("num_attention_heads", heads)
    d_head = r.int("head_dim") if r.get("head_dim") is not None else (256 if t == "gemma" else None)
    out = dict(arch="decoder", n_layer=r.int("num_hidden_layers", layers), d_model=d, n_head=n_head,
               n_kv_head=r.int("num_key_value_heads", kv or n_head), d_head=d_head,
               d_ff=r.int("intermediate_size", ff), vocab_size=r.int("vocab_size", vocab),
               max_seq_len=r.int("max_position_embeddings", max_pos), activation="swiglu", norm="rmsnorm",
               norm_position="pre", positional="rope", rope_theta=r.rope_theta(), mask="causal",
               tie_embeddings=r.bool("tie_word_embeddings", tied), norm_eps=r.float("rms_norm_eps", eps))
    if t == "qwen2":
        out.update(bias=False, qkv_bias=True)  # Qwen keeps biases on Q, K, V only
        if r.bool("use_sliding_window", False) and r.get("sliding_window"):
            out.update(mask="sliding_window", window=r.int("sliding_window"))
    else:
        attn_bias = r.bool("attention_bias", False)
        mlp_bias = r.bool("mlp_bias", False) if t == "llama" else False
        if attn_bias != mlp_bias:
            raise ValueError(Msg("sizing.hf.mixed_bias"))
        out.update(bias=attn_bias, qkv_bias=attn_bias)
        # Mistral defaults to a 4096-token window; an explicit null (Mistral v0.2 and later) means none.
        window = r.d.get("sliding_window", 4096 if t == "mistral" else None)
        if t in ("mistral", "phi3") and window is not None:
            out.update(mask="sliding_window", window=r.int("sliding_window", window))
    if t == "gemma":
        out.update(embed_scale=True)
        notes.append(Msg("sizing.hf.note_gemma"))
    if r.partial_rotary() < 1:
        notes.append(Msg("sizing.hf.note_partial_rope"))
    return out


def _gpt_neox(r: _Reader, notes: list[str]) -> dict:
    d = r.int("hidden_size", 6144)
    if r.bool("use_parallel_residual", True):
        notes.append(Msg("sizing.hf.note_neox_parallel"))
    if r.partial_rotary(0.25) < 1:
        notes.append(Msg("sizing.hf.note_partial_rope"))
    bias = r.bool("attention_bias", True)
    if not bias:
        raise ValueError(Msg("sizing.hf.neox_bias"))
    return dict(arch="decoder", n_layer=r.int("num_hidden_layers", 44), d_model=d,
                n_head=r.int("num_attention_heads", 64), d_ff=r.int("intermediate_size", 24576),
                vocab_size=r.int("vocab_size", 50432), max_seq_len=r.int("max_position_embeddings", 2048),
                activation=_activation(r, "hidden_act", "gelu"), norm="layernorm", norm_position="pre",
                positional="rope", rope_theta=r.rope_theta(legacy_key="rotary_emb_base"), mask="causal", bias=True,
                tie_embeddings=r.bool("tie_word_embeddings", False), norm_eps=r.float("layer_norm_eps", 1e-5))


def _qwen(r: _Reader, notes: list[str]) -> dict:
    # Qwen (1.0) ships its own modelling code: intermediate_size is twice the FFN width (w1 and w2 each take half).
    d = r.int("hidden_size", 2048)
    n_head = r.int("num_attention_heads", 16)
    notes.append(Msg("sizing.hf.note_qwen1"))
    return dict(arch="decoder", n_layer=r.int("num_hidden_layers", 24), d_model=d, n_head=n_head,
                d_head=r.int("kv_channels", d // n_head), d_ff=r.int("intermediate_size", 11008) // 2,
                vocab_size=r.int("vocab_size", 151936),
                max_seq_len=r.int("seq_length", r.get("max_position_embeddings", 8192)), activation="swiglu",
                norm="rmsnorm", norm_position="pre", positional="rope",
                rope_theta=r.float("rotary_emb_base", 10000.0), mask="causal", bias=not r.bool("no_bias", True),
                qkv_bias=True, tie_embeddings=r.bool("tie_word_embeddings", False),
                norm_eps=r.float("layer_norm_epsilon", 1e-6))


MAPPERS: dict[str, Callable[[_Reader, list[str]], dict]] = {
    "gpt2": _gpt2, "openai-gpt": _openai_gpt, "bert": _bert, "roberta": _bert, "distilbert": _distilbert,
    "llama": _llama_like, "mistral": _llama_like, "qwen2": _llama_like, "phi3": _llama_like, "gemma": _llama_like,
    "gpt_neox": _gpt_neox, "qwen": _qwen,
}
SUPPORTED_MODEL_TYPES = tuple(MAPPERS)

# Families whose parameters live in places this lab does not model, with the reason in one line.
_WHY_NOT = {
    "mixtral": Msg("sizing.hf.why_not.mixtral"),
    "qwen2_moe": Msg("sizing.hf.why_not.moe"),
    "t5": Msg("sizing.hf.why_not.t5"),
    "gemma2": Msg("sizing.hf.why_not.extra_norms"),
    "gemma3": Msg("sizing.hf.why_not.extra_norms"),
}


def import_hf_config(d: dict) -> HFImport:
    """``config_from_hf`` plus notes on what the mapping approximated."""
    if not isinstance(d, dict):
        raise ValueError(Msg("sizing.hf.not_object"))
    model_type = d.get("model_type")
    if not model_type:
        raise ValueError(Msg("sizing.hf.no_model_type", supported=", ".join(SUPPORTED_MODEL_TYPES)))
    if model_type not in MAPPERS:
        supported = ", ".join(SUPPORTED_MODEL_TYPES)
        if model_type in _WHY_NOT:
            raise ValueError(Msg("sizing.hf.unsupported_why", model_type=repr(model_type), why=_WHY_NOT[model_type],
                                 supported=supported))
        raise ValueError(Msg("sizing.hf.unsupported", model_type=repr(model_type), supported=supported))
    notes: list[Msg] = []
    fields = MAPPERS[model_type](_Reader(d, model_type), notes)
    return HFImport(ModelConfig(**fields), model_type, tuple(notes))


def config_from_hf(d: dict) -> ModelConfig:
    """Map a Hugging Face config.json (as a dict) to a ModelConfig; unknown model types raise ValueError."""
    return import_hf_config(d).cfg


def runnable_config(d: dict, model_type: str) -> ModelConfig:
    """The config of a checkpoint whose weights the core will run: ``config_from_hf``, refused wherever the core
    would compute something other than the checkpoint (a count can ignore that, a forward pass cannot)."""
    imported = import_hf_config(d)
    if imported.model_type != model_type:
        raise ValueError(f"Expected a {model_type} config.json, not model_type {imported.model_type!r}.")
    reader = _Reader(d, model_type)
    refusals = list(imported.notes)
    if imported.cfg.positional == "rope" and reader.rope_type() != "default":
        refusals.append(f"its RoPE is rescaled ({reader.rope_type()}); the core rotates by plain RoPE only.")
    if imported.cfg.activation == "swiglu" and reader.get("hidden_act", "silu") != "silu":
        refusals.append(f"its FFN gate is {reader.get('hidden_act')!r}; the core's SwiGLU gates with SiLU.")
    if refusals:
        raise ValueError("This checkpoint cannot run exactly in the explorer's core: " + " ".join(refusals))
    return imported.cfg


def eos_token_ids(d: dict) -> tuple[int, ...]:
    """The end-of-text ids a config.json names (one id, a list, or none)."""
    value = d.get("eos_token_id")
    ids = value if isinstance(value, list) else [] if value is None else [value]
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise ValueError(f"'eos_token_id' in config.json must be a token id or a list of them (got {value!r}).")
    return tuple(ids)


def config_to_hf(cfg: ModelConfig) -> dict:
    """The inverse for the families transformers can build from our fields: GPT-2 style (learned positions,
    LayerNorm, biases), BERT style (post-norm encoder) and LLaMA / Qwen2 style (RoPE, RMSNorm, SwiGLU)."""
    d = cfg.d_model
    if cfg.arch == "encoder" and cfg.norm_position == "post" and cfg.positional == "learned" and cfg.embed_norm:
        return {"model_type": "bert", "hidden_size": d, "num_hidden_layers": cfg.n_layer,
                "num_attention_heads": cfg.n_head, "intermediate_size": cfg.d_ff, "vocab_size": cfg.vocab_size,
                "max_position_embeddings": cfg.max_seq_len, "type_vocab_size": cfg.type_vocab_size,
                "layer_norm_eps": cfg.norm_eps}
    if cfg.arch == "decoder" and cfg.positional == "learned" and cfg.norm == "layernorm" and cfg.bias \
            and cfg.qkv_bias and cfg.activation != "swiglu" and cfg.n_head * cfg.d_head == d \
            and cfg.n_kv_head == cfg.n_head:
        if cfg.norm_position == "pre":
            return {"model_type": "gpt2", "n_embd": d, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                    "n_inner": cfg.d_ff, "vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len,
                    "tie_word_embeddings": cfg.tie_embeddings}
        if cfg.d_ff == 4 * d:
            return {"model_type": "openai-gpt", "n_embd": d, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                    "vocab_size": cfg.vocab_size, "n_positions": cfg.max_seq_len,
                    "tie_word_embeddings": cfg.tie_embeddings}
    if cfg.arch == "decoder" and cfg.positional == "rope" and cfg.norm == "rmsnorm" and cfg.activation == "swiglu" \
            and cfg.norm_position == "pre" and not cfg.bias:
        out = {"model_type": "qwen2" if cfg.qkv_bias else "llama", "hidden_size": d,
               "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
               "num_key_value_heads": cfg.n_kv_head, "intermediate_size": cfg.d_ff, "vocab_size": cfg.vocab_size,
               "max_position_embeddings": cfg.max_seq_len, "rope_theta": cfg.rope_theta,
               "rms_norm_eps": cfg.norm_eps, "tie_word_embeddings": cfg.tie_embeddings}
        out["head_dim"] = cfg.d_head
        return out
    return {}
