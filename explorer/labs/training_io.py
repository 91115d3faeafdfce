"""A trained model as the other labs take it, and as a file a student downloads and uploads again.

The file is a zip of three members: ``model.safetensors`` (the weights: safetensors holds tensors and nothing that
runs, unlike a pickled ``.pt``), ``config.json`` (the ModelConfig and how it was trained) and ``tokenizer.json``
(explorer.bpe's own format). ``load_trained`` treats an upload as hostile: sizes are capped before anything is read
or unpacked, every field is checked, and every failure is a ValueError carrying a sentence for the student.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..bpe import tokenizer_from_json
from ..config import ModelConfig
from ..i18n import Msg
from ..model import Transformer
from ..models.protocol import TextMethods
from .training_data import TrainedTokenizer

if TYPE_CHECKING:
    from .training import Trainer

FORMAT = "transformer-explorer/trained-model"
VERSION = 1
MEMBERS = ("model.safetensors", "config.json", "tokenizer.json")
MAX_UPLOAD_BYTES = 96 * 2**20  # the largest model the lab trains (20M float32 parameters) is 80 MB
MAX_MEMBER_BYTES = {"model.safetensors": 96 * 2**20, "config.json": 64 * 2**10, "tokenizer.json": 4 * 2**20}
MAX_VOCAB = 50_000
MAX_PARAMS = 20_000_000
# The architecture a trained model may have: what the training lab builds (a causal decoder), within its caps.
CONFIG_LIMITS = {"n_layer": 8, "d_model": 512, "n_head": 16, "max_seq_len": 256, "vocab_size": MAX_VOCAB}


@dataclass(frozen=True)
class TrainedModel(TextMethods):
    """An ``explorer.models.LoadedModel`` (explorer/models/protocol.py), as the tiny and real models are: eval
    mode, no gradients, never written to, so the generation and internals labs may share it."""

    name: str
    title: str
    model: Transformer
    tokenizer: TrainedTokenizer
    config: ModelConfig
    steps: int  # updates it was trained for
    eos_token_ids: tuple[int, ...] = ()

    @property
    def supports_chat(self) -> bool:
        return False

    @property
    def device(self) -> torch.device:
        return self.model.device


def trained_model(model: Transformer, tokenizer: TrainedTokenizer, *, name: str = "trained", title: str | None = None,
                  steps: int = 0) -> TrainedModel:
    """A frozen copy of ``model`` (training may go on with the original)."""
    copy = Transformer.from_seed(model.cfg, 0)
    copy.load_state_dict(model.state_dict())
    copy.eval().requires_grad_(False)
    cfg = model.cfg
    title = title or Msg("training.lib.model_title", steps=steps, n_layer=cfg.n_layer, n_head=cfg.n_head,
                         d_model=cfg.d_model, tokenizer=tokenizer.kind)
    return TrainedModel(name=name, title=title, model=copy, tokenizer=tokenizer, config=cfg, steps=max(0, steps))


def _weights(model: Transformer) -> dict[str, torch.Tensor]:
    # A tied unembedding is the embedding itself: stored once (safetensors refuses two names for one tensor).
    state = model.state_dict()
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return {name: t.detach().contiguous().clone() for name, t in state.items()}


def save_trained(trainer: "Trainer | TrainedModel") -> bytes:
    """The zip of a Trainer's model (as it is now, between two steps if it is training) or of a TrainedModel."""
    lock = getattr(trainer, "_lock", None)
    if lock is not None:
        with lock:
            return _zip(trainer)
    return _zip(trainer)


def _zip(trainer: "Trainer | TrainedModel") -> bytes:
    model, tokenizer = trainer.model, trainer.tokenizer
    steps = getattr(trainer, "steps", None)
    steps = steps if isinstance(steps, int) else max(0, getattr(trainer, "next_step", 1) - 1)
    meta = {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(), "steps": steps}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.safetensors", save_safetensors(_weights(model), metadata={"format": FORMAT}))
        zf.writestr("config.json", json.dumps(meta, ensure_ascii=False, indent=1))
        zf.writestr("tokenizer.json", tokenizer.to_json())
    return buffer.getvalue()


def _refuse(reason: str, **params) -> ValueError:
    return ValueError(Msg(f"training.lib.upload.{reason}", **params))


def _read_members(data: bytes) -> dict[str, bytes]:
    if not isinstance(data, (bytes, bytearray)):
        raise _refuse("not_zip")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _refuse("too_big", size=len(data), cap=MAX_UPLOAD_BYTES)
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise _refuse("not_zip") from None
    names = [info.filename for info in infos]
    if sorted(names) != sorted(MEMBERS):
        raise _refuse("members", expected=", ".join(MEMBERS), got=", ".join(names[:10]) or "-")
    members = {}
    for info in infos:
        cap = MAX_MEMBER_BYTES[info.filename]
        if info.file_size > cap:  # what the header claims, checked before unpacking
            raise _refuse("member_too_big", name=info.filename, size=info.file_size, cap=cap)
        try:
            with zf.open(info) as f:
                raw = f.read(cap + 1)  # a header that lies about the size is still stopped at the cap
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, NotImplementedError):
            raise _refuse("not_zip") from None
        if len(raw) > cap:
            raise _refuse("member_too_big", name=info.filename, size=len(raw), cap=cap)
        members[info.filename] = raw
    return members


def _config(raw: bytes) -> tuple[ModelConfig, int]:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _refuse("config") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION \
            or not isinstance(meta.get("config"), dict):
        raise _refuse("config")
    known = {f.name for f in fields(ModelConfig)}
    given = meta["config"]
    if set(given) - known:
        raise _refuse("config")
    try:
        cfg = ModelConfig(**given)
    except (TypeError, ValueError):
        raise _refuse("config") from None
    if cfg.arch != "decoder" or cfg.mask != "causal" or any(getattr(cfg, k) > v for k, v in CONFIG_LIMITS.items()) \
            or cfg.d_ff > 4 * CONFIG_LIMITS["d_model"] or cfg.n_head * cfg.d_head > CONFIG_LIMITS["d_model"]:
        raise _refuse("architecture")
    steps = meta.get("steps", 0)
    return cfg, steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0


def load_trained(data: bytes, *, name: str = "uploaded", title: str | None = None) -> TrainedModel:
    """The model in a file written by ``save_trained``; ValueError (with a Msg) for anything else."""
    members = _read_members(data)
    cfg, steps = _config(members["config.json"])
    try:
        inner = tokenizer_from_json(members["tokenizer.json"].decode("utf-8"))
    except Exception:  # noqa: BLE001 (any malformed tokenizer file, whatever explorer.bpe raises on it)
        raise _refuse("tokenizer") from None
    tokenizer = TrainedTokenizer(inner)
    if tokenizer.vocab_size != cfg.vocab_size:
        raise _refuse("vocab", tokenizer=tokenizer.vocab_size, model=cfg.vocab_size)
    with torch.device("meta"):
        shapes = Transformer(cfg)
    if sum(p.numel() for p in shapes.parameters()) > MAX_PARAMS:
        raise _refuse("architecture")
    expected = {k: v for k, v in _meta_state(shapes).items()}
    try:
        weights = load_safetensors(members["model.safetensors"])
    except (SafetensorError, ValueError, RuntimeError, OSError):
        raise _refuse("weights") from None
    if set(weights) != set(expected):
        raise _refuse("weights")
    for key, tensor in weights.items():
        if tensor.dtype != torch.float32 or tuple(tensor.shape) != expected[key] or not torch.isfinite(tensor).all():
            raise _refuse("weights")
    model = Transformer.from_seed(cfg, 0)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - ({"lm_head.weight"} if cfg.tie_embeddings else set()):
        raise _refuse("weights")
    model._tie_weights()
    model.eval().requires_grad_(False)
    title = title or Msg("training.lib.model_title", steps=steps, n_layer=cfg.n_layer, n_head=cfg.n_head,
                         d_model=cfg.d_model, tokenizer=tokenizer.kind)
    return TrainedModel(name=name, title=title, model=model, tokenizer=tokenizer, config=cfg, steps=steps)


def _meta_state(model: Transformer) -> dict[str, tuple[int, ...]]:
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state
