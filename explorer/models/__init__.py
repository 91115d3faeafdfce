"""The models the labs run: real ones with their weights (explorer.models.pretrained), tiny random ones
(explorer.models.tiny), the toy tokenization of the random-weight labs (explorer.models.toy_tokens), the one
HF-config reader (explorer.models.hf_config), the one lock-guarded tokenizer stack (explorer.models.tokenizer) and
the labels of byte-level tokens (explorer.models.token_labels). ``LoadedModel`` names what every lab that takes a
model may use."""
from .protocol import Encoded, LoadedModel, ModelTokenizer

__all__ = ["Encoded", "LoadedModel", "ModelTokenizer"]
