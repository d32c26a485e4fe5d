"""Models as a user meets them: built-ins, torchvision by name, their own code, init, and learning."""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
import textwrap
import uuid
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from danlu.engine.errors import UserError
from danlu.engine.build.imports import resolve_target
from danlu.engine.build.models import BUILTIN_MODEL_ARGS, MLP, SmallCNN, build_model, count_parameters
from danlu.engine.build.shapes import ShapesDataset


def model_cfg(name="small_cnn", init="default", **args):
    return SimpleNamespace(name=name, args=args, init=init)


@pytest.fixture
def clean_sys_path(monkeypatch):
    """resolve_target may add the cwd to sys.path; keep that from leaking into other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))


# --- built-ins and torchvision ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["small_cnn", "mlp"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 8, 8)])
def test_builtin_models_give_one_logit_per_class(name, shape):
    model = build_model(model_cfg(name), num_classes=7, input_shape=shape)
    assert model(torch.randn(4, *shape)).shape == (4, 7)


def test_builtin_args_change_the_model():
    small = build_model(model_cfg("small_cnn", width=8), 10, (3, 32, 32))
    big = build_model(model_cfg("small_cnn", width=32, dropout=0.0), 10, (3, 32, 32))
    assert count_parameters(small) < count_parameters(big)
    mlp = build_model(model_cfg("mlp", hidden=[16]), 10, (1, 4, 4))
    assert count_parameters(mlp) == (16 * 16 + 16) + (16 * 10 + 10)
    with pytest.raises(UserError, match="width"):
        build_model(model_cfg("mlp", width=3), 10, (1, 4, 4))


def test_builtin_model_args_table_matches_the_constructors():
    for name, cls in [("small_cnn", SmallCNN), ("mlp", MLP)]:
        params = inspect.signature(cls).parameters
        for arg, default in BUILTIN_MODEL_ARGS[name].items():
            assert arg in params
            assert list(params[arg].default) == default if isinstance(default, list) else params[arg].default == default


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_torchvision_model_by_name_for_gray_and_colour(shape):
    model = build_model(model_cfg("resnet18"), num_classes=5, input_shape=shape)
    model.eval()
    assert model(torch.randn(2, *shape)).shape == (2, 5)
    # Gray input is adapted without renaming parameters, so checkpoints and param_groups match resnet18's.
    assert "fc.weight" in model.state_dict() and "conv1.weight" in model.state_dict()


def test_torchvision_model_rejects_other_channel_counts_and_bad_args():
    with pytest.raises(UserError, match="3-channel"):
        build_model(model_cfg("resnet18"), 5, (2, 32, 32))
    with pytest.raises(UserError, match="model.args"):
        build_model(model_cfg("resnet18", wdith=3), 5, (3, 32, 32))


def test_googlenet_trains_on_its_main_logits_without_aux_heads_unless_asked():
    """Aux heads would cost time for nothing (training reads the main logits); asked for, they stay."""
    model = build_model(model_cfg("googlenet"), 5, (3, 32, 32))
    model.train()
    assert model.aux1 is None and model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert build_model(model_cfg("googlenet", aux_logits=True), 5, (3, 32, 32)).aux1 is not None


@pytest.mark.parametrize("typo,meant", [("resnt18", "resnet18"), ("small_cn", "small_cnn"),
                                        ("mobilenet_v3_smal", "mobilenet_v3_small")])
def test_unknown_model_suggests_a_close_name(typo, meant):
    with pytest.raises(UserError, match=f"Did you mean {meant}"):
        build_model(model_cfg(typo), 10, (3, 32, 32))


# --- init -----------------------------------------------------------------------------------------

def _std(t: torch.Tensor) -> float:
    return t.float().std().item()


def test_kaiming_and_xavier_set_the_expected_scales():
    shape = (3, 32, 32)
    torch.manual_seed(0)
    default = build_model(model_cfg(width=32), 10, shape)
    kaiming = build_model(model_cfg(width=32, init="kaiming"), 10, shape)
    xavier = build_model(model_cfg(width=32, init="xavier"), 10, shape)
    conv = lambda m: m.features[5][0]  # Conv2d(128, 128, 3): fan_in = fan_out = 1152
    conv_fan = 128 * 9
    assert _std(conv(kaiming).weight) == pytest.approx(math.sqrt(2 / conv_fan), rel=0.05)
    assert _std(conv(xavier).weight) == pytest.approx(math.sqrt(2 / (2 * conv_fan)), rel=0.05)
    assert _std(conv(default).weight) == pytest.approx(1 / math.sqrt(3 * conv_fan), rel=0.05)  # torch's own
    lin_k, lin_x = kaiming.head[1], xavier.head[1]          # Linear(128, 10)
    assert _std(lin_k.weight) == pytest.approx(math.sqrt(2 / 128), rel=0.15)
    assert _std(lin_x.weight) == pytest.approx(math.sqrt(2 / (128 + 10)), rel=0.15)
    for m in (kaiming, xavier):
        assert torch.count_nonzero(m.head[1].bias) == 0
        bn = m.features[0][1]
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_default_init_is_torch_own_and_unknown_init_is_rejected():
    torch.manual_seed(1)
    a = build_model(model_cfg(), 10, (3, 16, 16))
    torch.manual_seed(1)
    b = build_model(model_cfg(), 10, (3, 16, 16))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.count_nonzero(a.head[1].bias) > 0  # torch's default leaves nonzero biases
    with pytest.raises(UserError, match="model.init"):
        build_model(model_cfg(init="orthogonal"), 10, (3, 16, 16))


def test_count_parameters():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    assert count_parameters(m) == 8 + 3
    m[0].requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == 3


# --- the user's own models and import targets -----------------------------------------------------

USER_MODELS = textwrap.dedent("""
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes, hidden=8):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        def forward(self, x):
            return self.body(x)

    def build(num_classes, input_shape, width=4):
        c = input_shape[0]
        return nn.Sequential(nn.Conv2d(c, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def fixed():
        return nn.Linear(3, 2)

    def not_a_model(num_classes):
        return "oops"

    CONSTANT = 3
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch, clean_sys_path):
    name = f"usermodels_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODELS)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_user_model_class_and_function(user_module):
    net = build_model(model_cfg(f"{user_module}:Net", hidden=16), 6, (1, 28, 28))
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 6)
    conv = build_model(model_cfg(f"{user_module}:build", width=5, init="kaiming"), 4, (3, 16, 16))
    assert conv(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    # A callable that takes no num_classes is called without it.
    assert isinstance(build_model(model_cfg(f"{user_module}:fixed"), 2, (3,)), nn.Linear)


def test_user_model_problems_are_user_errors(user_module):
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        build_model(model_cfg(f"{user_module}:not_a_model"), 2, (3,))
    with pytest.raises(UserError, match="model.args"):
        build_model(model_cfg(f"{user_module}:Net", depth=3), 2, (3,))


def test_resolve_target_explains_what_is_wrong(user_module):
    with pytest.raises(UserError, match=f"model.name: module '{user_module}' \\(.+\\) has no attribute 'buid'"):
        resolve_target(f"{user_module}:buid", "model.name")
    with pytest.raises(UserError, match="not a callable"):
        resolve_target(f"{user_module}:CONSTANT", "model.name")
    with pytest.raises(UserError, match="cannot import module 'no_such_pkg.nets'"):
        resolve_target("no_such_pkg.nets:build", "model.name")
    with pytest.raises(UserError, match="package.module:callable"):
        resolve_target("just_a_name", "model.name")
    with pytest.raises(UserError, match="not found"):
        resolve_target("nowhere/file.py:build", "model.name")


def test_resolve_target_shows_errors_inside_the_users_module(tmp_path, monkeypatch, clean_sys_path):
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import some_missing_dependency\n")
    monkeypatch.chdir(tmp_path)
    # Their module was found; what is missing is its own import, so that is what they must see.
    with pytest.raises(ModuleNotFoundError, match="some_missing_dependency"):
        resolve_target(f"{name}:build", "model.name")


def test_resolve_target_by_file_path(tmp_path, monkeypatch, clean_sys_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "models.py").write_text(USER_MODELS)
    monkeypatch.chdir(tmp_path)
    fn = resolve_target("nets/models.py:fixed", "model.name")
    assert fn is resolve_target(str(tmp_path / "nets" / "models.py") + ":fixed", "model.name")
    assert isinstance(fn(), nn.Linear)


def test_installed_packages_win_over_the_working_directory(tmp_path, monkeypatch, clean_sys_path):
    (tmp_path / "colorsys.py").write_text("def rgb_to_hsv(*a):\n    return 'shadowed'\n")
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_target("colorsys:rgb_to_hsv", "model.name")(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize("module", ["code", "test"])
def test_a_file_beside_you_is_used_when_a_standard_module_of_its_name_lacks_the_callable(
        module, tmp_path, monkeypatch, clean_sys_path):
    (tmp_path / f"{module}.py").write_text(USER_MODELS)
    monkeypatch.chdir(tmp_path)
    with contextlib.suppress(ImportError):  # the standard library's, as torch or pdb would have loaded it
        __import__(module)
    fn = resolve_target(f"{module}:fixed", "model.name")
    assert isinstance(fn(), nn.Linear)
    with pytest.raises(UserError, match=f"module '{module}' \\({tmp_path}/{module}.py\\) has no attribute 'Nett'"):
        resolve_target(f"{module}:Nett", "model.name")


# --- learning ------------------------------------------------------------------------------------

@pytest.fixture
def one_thread():
    # Convs this small gain little from threads, and on a busy two-core box OpenMP workers
    # spin against each other: one thread ran this test 5x faster there.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_small_cnn_learns_shapes(one_thread):
    torch.manual_seed(0)
    # 16 px images keep this under ~15 s on two busy cores; the shapes stay distinguishable.
    ds = ShapesDataset(size=64 * 150, image_size=16, seed=0)
    model = build_model(model_cfg("small_cnn", width=16), ds.num_classes, (3, 16, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        batch = ds.__getitems__(list(range(step * 64, (step + 1) * 64)))
        x = torch.stack([b[0] for b in batch])
        y = torch.tensor([b[1] for b in batch])
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert start > 1.5  # chance level for 6 classes is ln 6 = 1.79
    assert end < 0.6 * start, f"loss went from {start:.3f} to {end:.3f}"


# --- whose init: the configured one for built-ins, the user's own weights otherwise ---------------

PRETRAINED = textwrap.dedent("""
    import torch
    from torch import nn

    def build(num_classes):
        torch.manual_seed(4321)  # the user's "pretrained" weights
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        backbone.requires_grad_(False)
        return nn.Sequential(backbone, nn.Linear(4, num_classes))
""")


@pytest.fixture
def pretrained(tmp_path, monkeypatch, clean_sys_path):
    (tmp_path / "mine.py").write_text(PRETRAINED)
    monkeypatch.chdir(tmp_path)
    return "mine.py:build"


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _setup(overrides):
    from danlu.engine.config.files import load_config
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    cfg = load_config(None, ["data.num_workers=0", "run.device=cpu", "run.out_dir=runs", *overrides])
    ch = ScriptedChannel()
    t = Trainer(cfg, ch)
    t.setup()
    t._cleanup()
    return t, "\n".join(e.message for e in ch.seen if type(e).__name__ == "LogLine")


def test_the_default_config_keeps_a_users_model_as_they_built_it(pretrained):
    from danlu.engine.build.imports import resolve_target
    made = _weights(resolve_target(pretrained, "model.name")(num_classes=6))
    t, log = _setup([f"model.name={pretrained}"])
    assert t.cfg.model.init == "auto"  # what configs/default.yaml asks for
    got = _weights(t.model)
    assert all(torch.equal(made[k], got[k]) for k in made)
    assert "keeps the weights it was built with" in log


def test_an_explicit_init_spares_frozen_layers_and_says_what_it_touched(pretrained):
    from danlu.engine.build.imports import resolve_target
    made = _weights(resolve_target(pretrained, "model.name")(num_classes=6))
    t, log = _setup([f"model.name={pretrained}", "model.init=kaiming"])
    got = _weights(t.model)
    frozen = [k for k in made if k.startswith("0.")]
    assert frozen and all(torch.equal(made[k], got[k]) for k in frozen)
    assert not torch.equal(made["1.weight"], got["1.weight"]) and torch.count_nonzero(got["1.bias"]) == 0
    assert "re-initialised 1 layer(s) (1)" in log and "2 frozen layer(s) (requires_grad=False) as they were: 0.0, 0.1" in log


def test_auto_is_kaiming_for_builtins_and_the_models_own_for_torchvision():
    torch.manual_seed(0)
    auto = build_model(model_cfg(width=32, init="auto"), 10, (3, 32, 32))
    torch.manual_seed(0)
    kaiming = build_model(model_cfg(width=32, init="kaiming"), 10, (3, 32, 32))
    assert all(torch.equal(p, q) for p, q in zip(auto.parameters(), kaiming.parameters()))
    torch.manual_seed(0)
    tv_auto = build_model(model_cfg("resnet18", init="auto"), 10, (3, 32, 32))
    torch.manual_seed(0)
    tv_own = build_model(model_cfg("resnet18", init="default"), 10, (3, 32, 32))
    assert all(torch.equal(p, q) for p, q in zip(tv_auto.parameters(), tv_own.parameters()))
