"""A trained model leaves the lab as a zip (safetensors + config.json + tokenizer.json) and comes back identical;
anything else uploaded is refused with a sentence, never unpickled, never unpacked beyond the caps; and the model
works where the other labs take one (explorer.models.LoadedModel)."""
import io
import json
import pickle
import zipfile

import pytest
import torch

from explorer.generation import generate
from explorer.sampling import SamplingSettings
from explorer.labs import training_io
from explorer.labs.training import TrainingSettings, load_trained, prepare, save_trained
from explorer.models import LoadedModel, ModelTokenizer

SMALL = dict(n_layer=2, d_model=32, n_head=4, n_kv_head=2, context=32, batch_size=4, steps=10, eval_every=10,
             sample_every=10)


@pytest.fixture(scope="module", params=["char", "bpe"])
def trainer(request):
    trainer = prepare(TrainingSettings(**SMALL, tokenizer=request.param, merges=100,
                                       positional="rope" if request.param == "bpe" else "learned")).result
    list(trainer.steps())
    return trainer


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_round_trip_gives_identical_logits_and_text(trainer):
    data = save_trained(trainer)
    loaded = load_trained(data)
    ids = trainer.tokenizer.encode("床前明月光，疑是地上霜。\n")
    with torch.no_grad():
        expected = trainer.model(torch.tensor([ids]))
    assert torch.equal(loaded.model(torch.tensor([ids])), expected)
    assert loaded.config == trainer.config and loaded.steps == 10
    assert loaded.tokenizer.to_json() == trainer.tokenizer.to_json()
    assert not any(p.requires_grad for p in loaded.model.parameters()) and not loaded.model.training
    assert set(_members(data)) == {"model.safetensors", "config.json", "tokenizer.json"}
    assert load_trained(save_trained(loaded)).model.state_dict().keys() == loaded.model.state_dict().keys()


def test_a_trained_model_works_where_the_labs_take_a_model(trainer):
    model = trainer.trained_model()
    assert isinstance(model, LoadedModel) and isinstance(model.tokenizer, ModelTokenizer)
    encoded = model.encode("白日依山尽")
    assert model.decode(encoded.ids) == "白日依山尽" and len(encoded.labels) == len(encoded.ids)
    steps = list(generate(model.model, model.tokenizer, "白日", SamplingSettings(max_new_tokens=8, seed=1)))
    assert len(steps) == 8 and all(0 <= s.token_id < model.config.vocab_size for s in steps)
    with pytest.raises(ValueError):
        model.encode("hi", chat=True)
    before = [p.clone() for p in model.model.parameters()]
    list(trainer.steps())  # training goes on (nothing left here) without touching the snapshot
    assert all(torch.equal(a, b) for a, b in zip(before, model.model.parameters()))


def _refused(data, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        load_trained(data)
    assert err.value.args[0].key == f"training.lib.upload.{reason}", err.value


def test_malformed_uploads_are_refused_with_a_sentence(trainer):
    good = _members(save_trained(trainer))
    cfg = json.loads(good["config.json"])
    _refused(b"not a zip at all", "not_zip")
    _refused(b"", "not_zip")
    _refused(good["model.safetensors"], "not_zip")  # a bare safetensors file is not the lab's zip
    _refused(_zip({k: v for k, v in good.items() if k != "tokenizer.json"}), "members")
    _refused(_zip({**good, "extra.py": b"print('hi')"}), "members")
    _refused(_zip({**good, "model.safetensors": pickle.dumps(trainer.model.state_dict())}), "weights")
    _refused(_zip({**good, "model.safetensors": good["model.safetensors"][:-100]}), "weights")
    _refused(_zip({**good, "config.json": b"{"}), "config")
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "format": "other"}).encode()}), "config")
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "config": {**cfg["config"], "evil": 1}}).encode()}),
             "config")
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "config": {**cfg["config"], "n_layer": 99}}).encode()}),
             "architecture")
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "config": {**cfg["config"], "arch": "encoder",
                                                                         "mask": "bidirectional"}}).encode()}),
             "architecture")
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "config": {**cfg["config"], "n_layer": 1}}).encode()}),
             "weights")  # the weights of two blocks for a one-block model
    _refused(_zip({**good, "config.json": json.dumps({**cfg, "config": {**cfg["config"], "vocab_size": 7}}).encode()}),
             "vocab")
    _refused(_zip({**good, "tokenizer.json": b"[1, 2"}), "tokenizer")
    _refused(_zip({**good, "tokenizer.json": json.dumps({"kind": "bpe", "byte_level": True,
                                                         "merges": [[1, 99999]]}).encode()}), "tokenizer")


def test_weights_of_the_wrong_kind_are_refused(trainer):
    from safetensors.torch import save
    good = _members(save_trained(trainer))
    weights = training_io._weights(trainer.model)
    name = next(iter(weights))
    for bad in ({**weights, name: weights[name].double()}, {**weights, name: weights[name][:1]},
                {**weights, name: torch.full_like(weights[name], float("nan"))},
                {k: v for k, v in weights.items() if k != name}):
        _refused(_zip({**good, "model.safetensors": save(bad)}), "weights")


def test_sizes_are_checked_before_unpacking(trainer, monkeypatch):
    good = _members(save_trained(trainer))
    monkeypatch.setitem(training_io.MAX_MEMBER_BYTES, "config.json", 1000)
    _refused(_zip({**good, "config.json": good["config.json"] + b" " * 5000}), "member_too_big")
    monkeypatch.setattr(training_io, "MAX_UPLOAD_BYTES", 1000)
    _refused(save_trained(trainer), "too_big")
