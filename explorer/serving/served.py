"""The models an engine process serves, under the names the generation lab gives them, so the app can ask a remote
engine for exactly the model a student picked. A model a student trained in the training lab lives in that
student's session only, so it is never served."""
from __future__ import annotations

from typing import Sequence

from ..generation import pin_chat_template
from ..labs.generation import REAL_MODEL
from ..models import LoadedModel
from ..models.pretrained import load_model
from ..models.tiny import TINY_DECODERS, load_tiny

SERVABLE = (REAL_MODEL, *TINY_DECODERS)
ALIASES = {"smollm2": REAL_MODEL}  # the short name of the command line


def model_id(name: str) -> str:
    """The served id of ``name`` (an id or an alias); ValueError for a model the lab does not offer."""
    name = ALIASES.get(name, name)
    if name not in SERVABLE:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join([*ALIASES, *SERVABLE])}")
    return name


def load_served(names: Sequence[str]) -> dict[str, LoadedModel]:
    """Load each model once: id -> model, in the order given; a chat model's engine keeps its template's system
    prompt from the start (explorer.generation.pin_chat_template)."""
    served: dict[str, LoadedModel] = {}
    for name in names:
        mid = model_id(name)
        if mid not in served:
            served[mid] = pm = load_tiny(mid) if mid in TINY_DECODERS else load_model(mid)
            pin_chat_template(pm.model, pm.tokenizer)
    return served
