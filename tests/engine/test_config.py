"""Config: strict schema, all problems at once, overrides, kind switches, packaged configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from danlu.engine.config.schema import PACKAGED_CONFIGS, from_dict
from danlu.engine.config.files import (apply_overrides, config_for_resume, find_config, load_config, parse_overrides,
                                       parse_yaml)
from danlu.engine.errors import ConfigError, UserError
from danlu.engine.config.knobs import OPTIMIZERS, SCHEDULERS

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_configs"


@pytest.mark.parametrize("path", sorted(PACKAGED_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(str(path))
    assert cfg.to_dict()["optim"]["name"] in OPTIMIZERS


def test_default_config_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config(None).name == "default.yaml"
    assert load_config().data.name == "shapes"
    assert find_config("default") == find_config(None)


@pytest.mark.parametrize("name,expected", [
    ("unknown_key.yaml", "unknown key optim.learnig_rate, did you mean optim.lr?"),
    ("negative_lr.yaml", "optim.lr: must be > 0, got -1"),
    ("nan_lr.yaml", "optim.lr: must be a finite number, got nan"),
    ("wrong_type.yaml", "train.epochs: must be a number, got 'three'"),
    ("unknown_optimizer.yaml", "optim.name: must be one of sgd, adam, adamw, rmsprop, adagrad, adadelta; got 'adamx'. Did you mean 'adam"),
    ("unknown_scheduler.yaml", "Did you mean 'cosine'?"),
    ("foreign_arg.yaml", "unknown key optim.betas (sgd does not take it; adam, adamw do)"),
])
def test_bad_config_message_names_key_and_fix(name, expected):
    with pytest.raises(ConfigError) as e:
        load_config(str(BAD / name))
    assert expected in str(e.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_config(str(BAD / "many_problems.yaml"))
    msg = str(e.value)
    assert len(e.value.problems) == 5, msg
    for part in ("optim.lr: must be > 0, got -1", "did you mean optim.lr?", "train.epochs: must be >= 1, got 0",
                 "train.grad_accum: must be a whole number, got 1.5", "data.batch_size: must be a number, got 'x'"):
        assert part in msg


def test_yaml_syntax_error_gives_line_and_column():
    with pytest.raises(UserError) as e:
        load_config(str(BAD / "yaml_syntax.yaml"))
    assert "line 3" in str(e.value) and "column" in str(e.value)


def test_python_tag_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        load_config(str(BAD / "python_tag.yaml"))
    assert "refused" in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_a_key_set_twice_is_refused_with_both_lines():
    with pytest.raises(UserError) as e:
        load_config(str(BAD / "duplicate_section.yaml"))
    assert "line 7: duplicate key 'optim' (also at line 2)" in str(e.value)
    with pytest.raises(UserError, match="line 3: duplicate key 'lr' \\(also at line 2\\)"):
        parse_yaml("optim:\n  lr: 0.1\n  lr: 0.2\n")
    # a YAML merge key overriding what it merged is no duplicate
    assert parse_yaml("a: &b\n  x: 1\nc:\n  <<: *b\n  x: 2\n")["c"] == {"x": 2}


def test_overrides_parse_yaml_scalars():
    pairs = dict(parse_overrides(["optim.lr=3e-4", "train.max_steps=10", "run.deterministic=true",
                                  "optim.betas=[0.9, 0.95]", "train.grad_clip=null"]))
    assert pairs == {"optim.lr": 3e-4, "train.max_steps": 10, "run.deterministic": True,
                     "optim.betas": [0.9, 0.95], "train.grad_clip": None}
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["optim.lr"])


@pytest.mark.parametrize("word,advice", [
    ("optim\\.lr=1e-3", "Did you mean optim.lr?"),        # a regex-style escape
    (".*lr=1e-3", "Did you mean optim.lr?"),              # a pattern
    ("optim[lr]=1e-3", "Did you mean optim.lr?"),
    ("lr=1e-3", "Did you mean optim.lr?"),                # no section
    ("max_step=5", "Did you mean train.max_steps?"),      # no section and a typo
    ("Optim.lr=1e-3", "Did you mean optim.lr?"),
    ("bs=32", "Did you mean data.batch_size?"),           # an alias people write
    ("model.args.widht=8", None),                         # the schema's own advice (below)
    ("optim.*=1", "The keys of optim include: name, lr"),
    ("train.max_steps==5", "one '=' between the key and the value"),
])
def test_a_mistyped_or_pattern_override_key_gets_advice(word, advice):
    if advice is None:
        with pytest.raises(ConfigError, match="it takes width"):
            load_config(None, [word])
        return
    with pytest.raises(UserError) as e:
        load_config(None, [word])
    assert advice in str(e.value)


def test_one_set_of_bounds_for_each_hot_setting():
    # the config, a command-line override, the dialogs and the engine refuse the same values
    from danlu.engine.build.optim import build_optimizer
    from danlu.engine.build.models import MLP
    from danlu.engine.build.optim import set_hparam
    from danlu.tui.parsing import BadInput, parse_hparam
    for value in (1.0, 1.5):
        with pytest.raises(ConfigError, match="optim.momentum: must be < 1"):
            load_config(None, ["optim.name=sgd", f"optim.momentum={value}"])
        with pytest.raises(BadInput):
            parse_hparam("momentum", str(value))
        opt = build_optimizer(MLP((4,), 2), load_config(None, ["optim.name=sgd"]).optim)
        with pytest.raises(ValueError):
            set_hparam(opt, "momentum", value)
    assert load_config(None, ["optim.name=sgd", "optim.momentum=0.99"]).optim.args["momentum"] == 0.99
    assert parse_hparam("momentum", "0.99") == 0.99


@pytest.mark.parametrize("word", ["off", "none", "false", "no"])
def test_grad_clip_off_on_the_command_line(word):
    # YAML reads a bare `off` as false: the same words as the dialog's turn clipping off
    assert load_config(None, [f"train.grad_clip={word}"]).train.grad_clip is None
    with pytest.raises(ConfigError, match="train.eval_every: must be a number"):
        load_config(None, ["train.eval_every=off"])  # empty means per epoch there, not off


@pytest.mark.parametrize("override", ["optim.name=sgd", "optim.name=rmsprop", "optim.name=adadelta",
                                      "schedule.name=onecycle", "schedule.name=plateau",
                                      "schedule.name=cosine_restarts", "model.name=mlp"])
def test_switching_kind_on_default_config_needs_no_deleting(override):
    cfg = load_config(None, [override])
    key, value = override.split("=")
    section, field = key.split(".")
    assert getattr(getattr(cfg, section), field) == value


def test_kind_switch_drops_only_foreign_keys_and_says_so():
    cfg = load_config(None, ["optim.name=sgd", "optim.momentum=0.9"])
    assert cfg.optim.args["momentum"] == 0.9
    assert cfg.optim.args["weight_decay"] == 0.01  # sgd takes it too: kept
    assert "betas" not in cfg.optim.args
    assert any("optim.betas dropped" in n for n in cfg.notes)


@pytest.mark.parametrize("words,args", [
    (["model.name=argmodel.py:build", "model.args.hidden=128"], {"hidden": 128}),
    (["model.name=googlenet", "model.args.aux_logits=false"], {"aux_logits": False}),
    (["model.name=mypkg.nets:Net", "model.args.depth=3"], {"depth": 3}),
])
def test_args_given_on_the_command_line_reach_a_models_builder(words, args):
    cfg = load_config(None, words)
    assert cfg.model.args == args
    # the base config's small_cnn width goes, and the note says it came from the base config
    assert any(n.startswith("model.args.width dropped: it came from the base config, for small_cnn")
               for n in cfg.notes), cfg.notes
    assert not any("hidden" in n or "aux_logits" in n or "depth" in n for n in cfg.notes)


@pytest.mark.parametrize("name,root", [("image_folder", "/tmp"), ("mydata.py:build", None)])
def test_dataset_switch_drops_only_the_base_configs_args(name, root):
    words = [f"data.name={name}", "data.args.image_size=32"] + ([f"data.root={root}"] if root else [])
    cfg = load_config(None, words)
    assert cfg.data.args == {"image_size": 32}  # `size` came from the packaged default: dropped
    assert any(n.startswith("data.args.size dropped: it came from the base config") for n in cfg.notes)


def test_a_builtin_keeps_the_base_args_it_takes_and_naming_the_same_kind_is_no_switch(tmp_path):
    cfg = load_config(None, ["model.name=mlp", "model.args.dropout=0.2"])
    assert cfg.model.args == {"dropout": 0.2}
    assert cfg.notes == ["model.args.width dropped: it came from the base config and mlp does not take it"]
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  name: mlp\n  args:\n    hidden: [32]\n")
    assert load_config(str(f), ["model.name=mlp"]).model.args == {"hidden": [32]}


def test_an_explicit_key_the_new_kind_does_not_take_is_an_error_not_a_silent_drop():
    with pytest.raises(ConfigError, match=r"unknown key optim.betas \(sgd does not take it"):
        load_config(None, ["optim.name=sgd", "optim.betas=[0.9, 0.99]"])
    with pytest.raises(ConfigError, match="model.args.width: mlp does not take it"):
        load_config(None, ["model.name=mlp", "model.args.width=8"])
    with pytest.raises(ConfigError, match="data.args.size: image_folder does not take it"):
        load_config(None, ["data.name=image_folder", "data.root=/tmp", "data.args.size=10"])


@pytest.fixture
def run_dir(tmp_path):
    """A run directory as far as the config layer sees it: its config.yaml."""
    d = tmp_path / "runs" / "default-20260101-120000"
    d.mkdir(parents=True)
    d.joinpath("config.yaml").write_text(load_config(None, ["train.max_steps=30"]).to_yaml())
    return d


@pytest.mark.parametrize("words,named", [
    (["optim.name=sgd"], ["optim.name adamw → sgd: the optimizer's state belongs to its kind"]),
    (["optim.param_groups=[{match: head, lr_mult: 10}]"],
     ["optim.param_groups [] → [{lr_mult: 10.0, match: head}]: the optimizer's state is kept per param group"]),
    (["data.batch_size=32"], ["data.batch_size 64 → 32: it changes what one step sees"]),
    (["model.args.width=12", "optim.lr=1e-4"], ["model.args.width 32 → 12: it changes the model the checkpoint holds"]),
    (["schedule.name=step", "run.seed=1"], ["schedule.name cosine → step: it changes the schedule's shape",
                                            "run.seed 0 → 1: the seed fixes the data split and order"]),
])
def test_resume_refuses_what_would_make_another_run_before_anything_runs(run_dir, words, named):
    with pytest.raises(UserError) as e:
        config_for_resume(run_dir, words)
    msg = str(e.value)
    assert msg.startswith("resume: these changes would make it another run, so nothing was resumed")
    for line in named:
        assert f"\n  {line}" in msg, msg
    assert "\n  optim.betas" not in msg  # only what was typed is named, not what a kind switch dropped with it
    assert f"danlu run --warm-start {run_dir} " + " ".join(
        f"'{w}'" if " " in w else w for w in words) in msg


def test_resume_accepts_hot_length_and_harmless_overrides(run_dir):
    cfg = config_for_resume(run_dir, ["optim.lr=1e-4", "train.max_steps=60", "train.grad_clip=off",
                                      "data.num_workers=0", "run.device=cpu", "monitor.nan_policy=stop",
                                      "data.batch_size=32", "train.grad_accum=2"])
    assert (cfg.optim.lr, cfg.train.max_steps, cfg.data.batch_size) == (1e-4, 60, 32)


def test_each_optimizer_and_scheduler_accepts_exactly_its_own_arguments():
    for name, (_, _, own) in OPTIMIZERS.items():
        cfg = from_dict({"optim": {"name": name}})
        assert set(cfg.optim.args) == set(own)
    for name, (_, _, own) in SCHEDULERS.items():
        cfg = from_dict({"schedule": {"name": name, **({"fn": "m:f"} if name == "lambda" else {})}})
        assert set(cfg.schedule.args) == set(own)
    with pytest.raises(ConfigError, match="unknown key schedule.T_0"):
        from_dict({"schedule": {"name": "cosine", "T_0": 5}})


def test_resolved_config_round_trips():
    cfg = load_config(None, ["optim.name=sgd", "optim.momentum=0.9", "schedule.name=step"])
    again = from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


def test_param_groups_validated():
    with pytest.raises(ConfigError) as e:
        from_dict({"optim": {"param_groups": [{"match": "(", "lr_mult": -1}, {"lr_mult": 2}]}})
    msg = str(e.value)
    assert "optim.param_groups[0].match: not a valid regex" in msg
    assert "optim.param_groups[0].lr_mult: must be > 0" in msg
    assert "optim.param_groups[1].match: must be set" in msg


def test_apply_overrides_creates_sections():
    raw: dict = {}
    apply_overrides(raw, [("train.max_steps", 5)])
    assert raw == {"train": {"max_steps": 5}}


def test_missing_config_file_lists_packaged_ones():
    with pytest.raises(UserError) as e:
        load_config("nope.yaml")
    assert "config file not found: nope.yaml" in str(e.value) and "default" in str(e.value)


def test_config_reference_doc_is_current():
    from danlu.engine.config.reference import render
    doc = Path(__file__).resolve().parents[2] / "docs" / "config.md"
    assert doc.read_text() == render(), "regenerate: python -m danlu.engine.config.reference > docs/config.md"


def test_a_bad_value_from_the_command_line_is_named_as_coming_from_there():
    # the message names the config file; the value is not in it, so say where it came from
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optim.lr=-1", "optim.foo=1", "train.epochs=3"])
    text = str(e.value)
    assert "optim.lr: must be > 0, got -1 (from the command line: optim.lr=-1)" in text
    assert "unknown key optim.foo" in text and "(from the command line: optim.foo=1)" in text
    assert "train.epochs=3" not in text  # a good override is not blamed
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optim.betas=[1.5, 0.9]"])
    assert "optim.betas[0]: must be < 1, got 1.5 (from the command line: optim.betas=[1.5, 0.9])" in str(e.value)


def test_a_warm_starts_bad_override_is_named_as_coming_from_the_command_line(tmp_path):
    from danlu.engine.config.files import config_for_warm_start
    run = tmp_path / "runs" / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text((PACKAGED_CONFIGS / "default.yaml").read_text())
    with pytest.raises(ConfigError, match=r"got -1 \(from the command line: optim\.lr=-1\)"):
        config_for_warm_start(run, None, ["optim.lr=-1"])
