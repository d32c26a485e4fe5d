"""Pretrained weights, offline: torchvision weights from the hub cache (a local stand-in file), the head
replaced for num_classes, the weights' normalisation for image_folder, a fast clear failure when the
file is not cached and the network is blocked, and model.weights_path with what did not fit named."""

from __future__ import annotations

import socket
import time

import pytest
import torch
import torchvision

from danlu.engine.build import pretrained
from danlu.engine.build.models import build_model
from danlu.engine.config.schema import from_dict
from danlu.engine.errors import UserError

from .helpers import run_trainer


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of our own (the real one is left alone)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def _model_cfg(**over):
    return from_dict({"model": {"name": "resnet18", **over}}).model


def test_default_weights_come_from_the_hub_cache_with_a_new_head(hub):
    w = torchvision.models.ResNet18_Weights.DEFAULT
    stand_in = torchvision.models.resnet18(weights=None).state_dict()  # plays the downloaded file
    path = pretrained.cache_file(w)
    path.parent.mkdir(parents=True)
    torch.save(stand_in, path)
    model = build_model(_model_cfg(args={"weights": "DEFAULT"}), 6, (3, 32, 32))
    assert model.fc.out_features == 6 and "head fc replaced: 1000 -> 6" in model.pretrained_note
    assert torch.equal(model.conv1.weight, stand_in["conv1.weight"])
    same = build_model(_model_cfg(args={"weights": "ResNet18_Weights.IMAGENET1K_V1"}), 6, (3, 32, 32))
    assert torch.equal(same.layer4[1].conv2.weight, stand_in["layer4.1.conv2.weight"])
    with pytest.raises(UserError, match="Did you mean IMAGENET1K_V1"):
        build_model(_model_cfg(args={"weights": "IMAGENET1K_V2"}), 6, (3, 32, 32))
    with pytest.raises(UserError, match="would overwrite the pretrained weights"):
        build_model(_model_cfg(args={"weights": "DEFAULT"}, init="kaiming"), 6, (3, 32, 32))
    mean, std, whose = pretrained.normalization(_model_cfg(args={"weights": "DEFAULT"}))
    assert mean == (0.485, 0.456, 0.406) and std == (0.229, 0.224, 0.225)
    assert whose == "ResNet18_Weights.IMAGENET1K_V1"


def test_googlenet_weights_load_without_the_aux_heads_training_does_not_use(hub):
    """The file holds aux1/aux2 (torchvision's pretrained googlenet); the model is built without them."""
    w = torchvision.models.GoogLeNet_Weights.DEFAULT
    stand_in = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    assert any(k.startswith("aux1.") for k in stand_in)
    path = pretrained.cache_file(w)
    path.parent.mkdir(parents=True)
    torch.save(stand_in, path)
    model = build_model(from_dict({"model": {"name": "googlenet", "args": {"weights": "DEFAULT"}}}).model,
                        6, (3, 32, 32))
    assert model.aux1 is None and model.transform_input  # as torchvision builds it for these weights
    assert torch.equal(model.conv1.conv.weight, stand_in["conv1.conv.weight"]) and model.fc.out_features == 6


def test_offline_without_the_file_fails_in_seconds_naming_the_cache(hub, monkeypatch):
    # a blackholed network: name lookups answer, connections never do (they hang until a timeout)
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.255.255.1", 443))])

    def connect(self, address):
        timeout = self.gettimeout()
        time.sleep(30 if timeout is None else timeout)  # without a timeout: the hang the test catches
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(pretrained, "DOWNLOAD_TIMEOUT_S", 0.5)
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        build_model(_model_cfg(args={"weights": "DEFAULT"}), 6, (3, 32, 32))
    assert time.monotonic() - t0 < 10
    text = str(e.value)
    assert str(hub / "checkpoints") in text and "resnet18-f37072fd.pth" in text and "weights_path" in text
    assert not list((hub / "checkpoints").iterdir())  # no half file left to be mistaken for the weights


def test_weights_path_loads_a_state_dict_and_names_the_head_it_skipped(tiny_config, tmp_path):
    source = torchvision.models.resnet18(weights=None)
    torch.save({"model_state_dict": source.state_dict(), "epoch": 3}, tmp_path / "w.pt")
    cfg = tiny_config({"model": {"name": "resnet18", "weights_path": str(tmp_path / "w.pt"),
                                 "freeze": [r"^(?!fc\.)"]},
                       "train": {"max_steps": 2}, "data": {"args": {"size": 64, "image_size": 32}}})
    cfg.model.args = {}  # the tiny config's small_cnn width
    t, ch = run_trainer(cfg)
    assert t.final_state == "finished"
    notes = [e.message for e in ch.seen if type(e).__name__ == "LogLine"]
    loaded = next(n for n in notes if n.startswith("model.weights_path"))
    assert "loaded 120 of 122 tensors" in loaded
    assert "fc.weight [1000, 512] vs [6, 512]" in loaded and "fc.bias" in loaded
    assert torch.equal(t.model.conv1.weight.cpu(), source.conv1.weight)  # frozen: still the loaded ones
    assert any("trainable 3,078 of" in n for n in notes)

    torch.save({"x": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="none of the 1 tensors"):
        pretrained.load_weights_path(torchvision.models.resnet18(), str(tmp_path / "other.pt"))
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="does not load as a state_dict with weights_only=True"):
        pretrained.load_weights_path(torchvision.models.resnet18(), str(tmp_path / "bad.pt"))


def test_image_folder_is_normalised_with_the_weights_own_mean_and_std(tmp_path):
    from PIL import Image
    from danlu.engine.build.data import build_datasets
    for cls in ("a", "b"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (200, 10 * i, 30)).save(tmp_path / "img" / cls / f"{i}.png")
    data = from_dict({"data": {"name": "image_folder", "root": str(tmp_path / "img"), "val_fraction": 0,
                               "args": {"image_size": 8}}}).data
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    bundle = build_datasets(data, 0, normalize=(mean, std, "Some_Weights.V1"))
    x, _ = bundle.train[0]
    assert x[0, 0, 0].item() == pytest.approx((200 / 255 - 0.5) / 0.25, abs=1e-3)
    assert "Some_Weights.V1" in bundle.notes[0]
