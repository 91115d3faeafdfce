"""Where notebooks found the real models before they moved to explorer.models: ``from explorer.pretrained import
load_model`` keeps working."""
from .models.pretrained import MODEL_NAMES, PretrainedModel, load_model  # noqa: F401
from .models.protocol import Encoded  # noqa: F401

__all__ = ["MODEL_NAMES", "Encoded", "PretrainedModel", "load_model"]
