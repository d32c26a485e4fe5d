"""Models and data as newcomers bring them: lazy layers, tuple/dict outputs, other dtypes,
one-hot labels, streams, regression targets and the losses that go with them."""

from __future__ import annotations

import math
import sys
import textwrap
import uuid

import pytest
import torch

from danlu.engine.build.fit import main_output
from danlu.engine.build.loss import Loss
from danlu.engine.config.schema import from_dict
from danlu.engine.control import events as ev
from danlu.engine.errors import ConfigError, UserError
from danlu.engine.store.runlog import read_jsonl

from ..conftest import TINY, merge
from .helpers import of_type, run_trainer

USER = textwrap.dedent('''
    import collections
    import torch
    from torch import nn
    from torch.utils.data import Dataset, IterableDataset, TensorDataset

    SEEN = {}  # what the models were given, for the tests to look at

    def _g():
        return torch.Generator().manual_seed(0)

    # --- models ---------------------------------------------------------------------
    class Lazy(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.conv = nn.LazyConv2d(4, 3)
            self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.LazyLinear(16), nn.ReLU(), nn.LazyLinear(num_classes))
        def forward(self, x):
            return self.head(self.conv(x))

    def lazy(num_classes):
        return Lazy(num_classes)

    class Shaped(nn.Module):
        """Returns its logits wrapped the way `kind` says."""
        def __init__(self, num_classes, kind):
            super().__init__()
            self.kind = kind
            self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        def forward(self, x):
            SEEN["dtype"], SEEN["max"] = x.dtype, float(x.max())
            y = self.body(x)
            if self.kind == "tuple":
                return y, y.detach() * 0 + 123
            if self.kind == "dict":
                return {"aux": y * 0 + 123, "logits": y}
            if self.kind == "out":
                return collections.OrderedDict(out=y, aux=y * 0 + 123)
            if self.kind == "bad":
                return {"pred": y}
            return y

    def shaped(num_classes, kind="tensor"):
        return Shaped(num_classes, kind)

    class Tokens(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, num_classes)
        def forward(self, x):
            SEEN["dtype"] = x.dtype
            return self.head(self.emb(x).mean(1))

    def tokens(num_classes):
        return Tokens(num_classes)

    class Pretrained(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            torch.manual_seed(1234)
            self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(36, 8))
            self.backbone.requires_grad_(False)
            self.head = nn.Linear(8, num_classes)
        def forward(self, x):
            return self.head(self.backbone(x))

    def pretrained(num_classes):
        return Pretrained(num_classes)

    # --- data --------------------------------------------------------------------------
    def regression(n=96, width=1):
        x = torch.randn(n, 6, generator=_g())
        y = x[:, :width] * 0.5 + 0.25
        return TensorDataset(x, y.squeeze(1) if width == 1 else y)

    def regression_with_classes(n=96):
        ds = regression(n)
        ds.classes = ["value"]
        return ds

    class Typed(Dataset):
        """float64 or uint8 images, int32 or float labels"""
        classes = ["a", "b", "c"]
        def __init__(self, x_dtype, y_dtype, n=96, one_hot=False):
            self.y = torch.arange(n) % 3
            x = torch.rand(n, 1, 8, 8, generator=_g())
            self.x = (x * 255).to(torch.uint8) if x_dtype == "uint8" else x.to(getattr(torch, x_dtype))
            self.labels = torch.nn.functional.one_hot(self.y, 3).float() if one_hot else self.y.to(getattr(torch, y_dtype))
        def __len__(self):
            return len(self.y)
        def __getitem__(self, i):
            return self.x[i], self.labels[i]

    def typed(x_dtype="float32", y_dtype="int64", one_hot=False):
        return Typed(x_dtype, y_dtype, one_hot=one_hot)

    def token_ids(n=64):
        x = torch.randint(0, 10, (n, 5), generator=_g())
        return {"train": TensorDataset(x, x[:, 0] % 2), "num_classes": 2}

    class Stream(IterableDataset):
        classes = ["neg", "pos"]
        def __init__(self, n):
            self.n = n
        def __iter__(self):
            g = _g()
            for _ in range(self.n):
                x = torch.randn(6, generator=g)
                yield x, int(x[0] > 0)

    def stream(n=40):
        return Stream(n)

    def stream_pair(n=40):
        return Stream(n), Stream(16)

    def binary(n=96):
        x = torch.randn(n, 6, generator=_g())
        return TensorDataset(x, (x[:, 0] > 0).long())

    # --- losses --------------------------------------------------------------------------
    def half_mse(output, target, scale=0.5):
        return scale * ((output.squeeze(-1) - target) ** 2).mean()

    class Summed(nn.Module):
        def forward(self, output, target):
            return ((output.squeeze(-1) - target) ** 2)  # forgot to reduce
''')


@pytest.fixture
def user(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"fitmod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def cfg_for(tmp_path, over):
    base = merge(TINY, {"run": {"out_dir": str(tmp_path / "runs")}, "data": {"batch_size": 8},
                        "train": {"max_steps": 3, "eval_every": 3}})
    base["model"] = {"name": "mlp", "args": {"hidden": [16]}}
    raw = merge(base, over)
    for section in ("data", "model"):  # args belong to the builder named here, not to TINY's
        if "name" in over.get(section, {}):
            raw[section]["args"] = over[section].get("args", {})
    return from_dict(raw)


def run(tmp_path, over):
    t, ch = run_trainer(cfg_for(tmp_path, over))
    assert t.final_state == "finished", t.error
    return t, ch


def refused(tmp_path, over) -> str:
    """The message a run that must not start gives (exit 2 from the command line)."""
    with pytest.raises(UserError) as err:
        run_trainer(cfg_for(tmp_path, over))
    return str(err.value)


def infos(ch) -> str:
    return "\n".join(e.message for e in of_type(ch.seen, ev.LogLine))


# --- lazy layers --------------------------------------------------------------------------

def test_lazy_layers_get_their_shapes_before_init_optimizer_and_count(tmp_path, user):
    t, ch = run(tmp_path, {"model": {"name": f"{user}:lazy", "init": "kaiming"}})
    real = sum(p.numel() for p in t.model.parameters())
    assert of_type(ch.seen, ev.RunStarted)[0].num_params == real > 0
    opt_params = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in t.model.parameters()}  # every materialised weight is trained
    assert "re-initialised 3 layer(s) (conv, head.2, head.4)" in infos(ch)  # the init saw the lazy layers once they had shapes


# --- outputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tuple", "dict", "out"])
def test_tuple_and_dict_outputs_use_the_main_logits(tmp_path, user, kind):
    t, ch = run(tmp_path, {"model": {"name": f"{user}:shaped", "args": {"kind": kind}}})
    evals = of_type(ch.seen, ev.EvalDone)
    # the aux entries are 123 everywhere: used as logits they would give a loss of exactly ln 6
    assert evals and all(abs(e.val_loss - math.log(6)) > 1e-3 for e in evals)


def test_an_output_without_a_known_shape_names_the_rule(tmp_path, user):
    msg = refused(tmp_path, {"model": {"name": f"{user}:shaped", "args": {"kind": "bad"}}})
    assert "keys pred" in msg and "'logits' entry" in msg


def test_torchvision_outputs_with_aux_logits_give_their_logits():
    # what googlenet and inception_v3 return in training mode with aux_logits=True
    from torchvision.models import GoogLeNetOutputs, InceptionOutputs
    logits, aux = torch.randn(2, 4), torch.randn(2, 4)
    assert main_output(GoogLeNetOutputs(logits, aux, aux)) is logits
    assert main_output(InceptionOutputs(logits, aux)) is logits


# --- dtypes ---------------------------------------------------------------------------------

def test_float64_inputs_and_int32_labels_train(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:typed", "args": {"x_dtype": "float64", "y_dtype": "int32"}}})
    assert "inputs are float64: cast to the model's float32" in infos(ch)
    assert of_type(ch.seen, ev.EvalDone)[-1].val_acc is not None


def test_uint8_images_are_scaled_like_totensor(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:typed", "args": {"x_dtype": "uint8"}},
                           "model": {"name": f"{user}:shaped"}})
    mod = sys.modules[user]
    assert mod.SEEN["dtype"] == torch.float32 and mod.SEEN["max"] <= 1.0
    assert "scaled by 1/255" in infos(ch)


def test_integer_token_ids_reach_an_embedding_as_they_are(tmp_path, user):
    run(tmp_path, {"data": {"name": f"{user}:token_ids"}, "model": {"name": f"{user}:tokens"}})
    assert sys.modules[user].SEEN["dtype"] == torch.int64


def test_whole_number_float_labels_are_class_indices(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:typed", "args": {"y_dtype": "float32"}}})
    assert "cast to int64" in infos(ch)


def test_one_hot_labels_survive_the_first_evaluation(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:typed", "args": {"one_hot": True}}})
    evals = of_type(ch.seen, ev.EvalDone)
    assert evals[-1].step == 3 and 0.0 <= evals[-1].val_acc <= 1.0


def test_one_hot_accuracy_compares_argmaxes():
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 2]), 3).float()
    loss, correct, n, counted = Loss("cross_entropy", {}).eval_sums(out, y)
    assert (int(correct), n, counted) == (3, 4, 4)


# --- streams --------------------------------------------------------------------------------

def test_a_stream_trains_for_max_steps_and_starts_again_when_it_ends(tmp_path, user):
    # 40 items make 5 batches of 8: 12 steps read the stream three times
    t, ch = run(tmp_path, {"data": {"name": f"{user}:stream", "num_workers": 0},
                           "train": {"max_steps": 12}})
    assert t.step == 12 and t.val_loader is None
    assert "data.val_fraction 0.25 ignored" in infos(ch)


def test_a_stream_with_its_own_validation_set_evaluates(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:stream_pair", "num_workers": 2}})
    assert of_type(ch.seen, ev.EvalDone)
    assert "data.num_workers 2 -> 1" in infos(ch)  # each worker would have yielded the whole stream


def test_a_stream_without_a_length_needs_max_steps(tmp_path, user):
    msg = refused(tmp_path, {"data": {"name": f"{user}:stream"},
                             "train": {"max_steps": None}})
    assert "Set train.max_steps" in msg


def test_a_stream_too_short_for_one_batch_is_a_message_not_a_crash(tmp_path, user):
    """Found mid-run (a stream has no length): exit 2 with the fix, no traceback, no empty crash file."""
    msg = refused(tmp_path, {"data": {"name": f"{user}:stream", "args": {"n": 5}, "num_workers": 0},
                             "train": {"max_steps": 4}})
    assert "without a full batch of 8 items" in msg and "data.batch_size" in msg
    (run_dir,) = tmp_path.glob("runs/*")
    assert not list(run_dir.glob("checkpoints/*crash*"))  # no step was trained: nothing to keep
    import json
    assert json.loads((run_dir / "state.json").read_text())["state"] == "failed"


# --- losses ---------------------------------------------------------------------------------

def test_regression_data_trains_with_mse_and_reports_no_accuracy(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:regression"},
                           "train": {"loss": "mse", "max_steps": 12, "eval_every": 4}})
    evals = of_type(ch.seen, ev.EvalDone)
    assert evals and all(e.val_acc is None for e in evals)
    assert evals[-1].val_loss < evals[0].val_loss
    assert t.model.head.out_features == 1  # sized from the target
    recs = [r for r in read_jsonl(t.run_dir / "metrics.jsonl") if "val_loss" in r]
    assert recs and all(r["val_acc"] is None for r in recs)


def test_regression_with_several_targets_sizes_the_model_from_them(tmp_path, user):
    t, _ = run(tmp_path, {"data": {"name": f"{user}:regression", "args": {"width": 3}},
                          "train": {"loss": "smooth_l1", "loss_args": {"beta": 0.5}}})
    assert t.model.head.out_features == 3


@pytest.mark.parametrize("builder", ["regression", "regression_with_classes"])
def test_classification_loss_on_regression_targets_names_the_fix(tmp_path, user, builder):
    assert "Set train.loss=mse" in refused(tmp_path, {"data": {"name": f"{user}:{builder}"}})


def test_a_one_column_output_is_not_broadcast_against_the_targets():
    out, y = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, 2.0, 5.0])
    # broadcasting (3, 1) against (3,) would average 9 differences: 20/9 instead of 4/3
    assert float(Loss("mse", {})(out, y)) == pytest.approx(4 / 3)


def test_a_column_of_class_indices_is_a_class_index_per_item():
    out, y = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), torch.tensor([[0], [1]], dtype=torch.int32)
    ce = Loss("cross_entropy", {})
    assert float(ce(out, y)) == pytest.approx(float(torch.nn.functional.cross_entropy(out, y.squeeze(1).long())))
    _, correct, _, counted = ce.eval_sums(out, y)
    assert (int(correct), counted) == (1, 2)


def test_a_torch_loss_class_gets_unbroadcast_outputs_and_matching_precision():
    out, y = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    huber = Loss("torch.nn:HuberLoss", {"delta": 10.0})  # quadratic here: half the mse
    assert float(huber(out, y)) == pytest.approx(0.5 * 4 / 3)


def test_label_smoothing_changes_the_loss():
    out, y = torch.tensor([[4.0, 0.0], [0.0, 4.0]]), torch.tensor([0, 1])
    plain, smooth = Loss("cross_entropy", {})(out, y), Loss("cross_entropy", {"label_smoothing": 0.2})(out, y)
    assert float(smooth) > float(plain) + 0.1


def test_bce_with_logits_on_binary_labels_counts_accuracy(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:binary"},
                           "train": {"loss": "bce_with_logits", "loss_args": {"pos_weight": 2.0}}})
    assert t.model.head.out_features == 1
    assert 0.0 <= of_type(ch.seen, ev.EvalDone)[-1].val_acc <= 1.0
    # a logit > 0 says yes: right on the first two, wrong on the third
    _, correct, _, counted = Loss("bce_with_logits", {}).eval_sums(torch.tensor([[2.0], [-1.0], [3.0]]),
                                                                   torch.tensor([1, 0, 0]))
    assert (int(correct), counted) == (2, 3)


def test_the_users_own_loss_function_and_class(tmp_path, user):
    t, ch = run(tmp_path, {"data": {"name": f"{user}:regression"},
                           "train": {"loss": f"{user}:half_mse", "loss_args": {"scale": 2.0}}})
    assert of_type(ch.seen, ev.EvalDone)[-1].val_acc is None
    msg = refused(tmp_path, {"data": {"name": f"{user}:regression"},
                             "train": {"loss": f"{user}:Summed"}})
    assert "returned (8,), not a single number" in msg


def test_loss_config_problems_are_named():
    for torch_name, ours in [("mse_loss", "mse"), ("CrossEntropyLoss", "cross_entropy"),
                             ("BCEWithLogitsLoss", "bce_with_logits"), ("smoothl1", "smooth_l1")]:
        with pytest.raises(ConfigError, match=f"Did you mean '{ours}'"):
            from_dict({"train": {"loss": torch_name}})
    with pytest.raises(ConfigError, match="train.loss_args.beta: mse does not take it.*smooth_l1 does"):
        from_dict({"train": {"loss": "mse", "loss_args": {"beta": 1.0}}})
    with pytest.raises(ConfigError, match="train.loss_args.label_smoothing"):
        from_dict({"train": {"loss_args": {"label_smoothing": 2}}})
    with pytest.raises(UserError, match="train.loss_args"):
        Loss("torch.nn.functional:mse_loss", {"nope": 1})


def test_a_resumed_stream_goes_on_where_it_stopped(tmp_path, user):
    from danlu.engine.config.files import config_for_resume
    over = {"data": {"name": f"{user}:stream", "num_workers": 0}, "train": {"max_steps": 9, "eval_every": None}}
    full, _ = run(tmp_path, over)
    cut, _ = run_trainer(cfg_for(tmp_path, over), script={7: [ev.stop(save=True)]})  # mid-way through a pass
    resumed, _ = run_trainer(config_for_resume(cut.run_dir), resume=cut.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 9

    def losses(run_dir):
        return {r["step"]: r["loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r}
    assert losses(full.run_dir) == losses(resumed.run_dir)  # the same batches, in the same order


def test_a_resume_does_not_claim_to_reinitialise_the_weights_it_restores(tiny_config):
    from danlu.engine.config.files import config_for_resume
    first, ch = run_trainer(tiny_config({"train": {"max_steps": 4}, "model": {"init": "kaiming"}}))
    assert "model.init kaiming: re-initialised" in infos(ch)  # a new run says what its init touched
    resumed, ch = run_trainer(config_for_resume(first.run_dir, ["train.max_steps=6"]), resume=first.run_dir)
    assert resumed.step == 6 and "the run now ends at step 6" in infos(ch)
    assert "re-initialised" not in infos(ch)  # the checkpoint's weights replaced whatever the init made
