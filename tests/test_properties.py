"""Property tests: whatever a person types or writes, a valid object or a clear error, never a crash."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danlu.engine.config import hot
from danlu.engine.control import events as ev
from danlu.engine.loop import commands as engine_commands
from danlu.engine.config.schema import FIELDS, SECTIONS, from_dict
from danlu.engine.errors import ConfigError
from danlu.engine.config.knobs import OPTIMIZERS, SCHEDULERS
from danlu.tui.parsing import BadInput, parse_hparam, parse_lr

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
known_keys = sorted({k for f in FIELDS.values() for k in f} | {"name", "lr", "param_groups", "warmup_steps"}
                    | {k for e in OPTIMIZERS.values() for k in e[2]} | {k for e in SCHEDULERS.values() for k in e[2]})
names = st.sampled_from(list(OPTIMIZERS) + list(SCHEDULERS) + ["shapes", "mlp", "small_cnn", "nope"])
section = st.dictionaries(st.one_of(st.sampled_from(known_keys), st.text(max_size=10)),
                          st.one_of(values, names), max_size=6)
configs = st.one_of(values, st.dictionaries(st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)),
                                            st.one_of(section, values), max_size=5))


@settings(max_examples=300, deadline=None)
@given(configs)
def test_config_validation_never_crashes(raw):
    try:
        cfg = from_dict(raw)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        return
    assert from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_lr_input_is_a_positive_finite_change_or_a_message(text):
    try:
        change = parse_lr(text)
    except BadInput as e:
        assert str(e)
        return
    x = change.value if change.value is not None else change.factor
    assert math.isfinite(x) and x > 0


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(hot.HPARAMS), st.text(max_size=16))
def test_hparam_input_parses_or_explains(name, text):
    try:
        parse_hparam(name, text)
    except BadInput as e:
        assert str(e)


_trainer = {}


def _live_trainer(tmp_path_factory):
    if "t" not in _trainer:
        from tests.conftest import TINY
        from danlu.engine.control.channel import Channel
        from danlu.engine.loop.trainer import Trainer
        raw = dict(TINY, run=dict(TINY["run"], out_dir=str(tmp_path_factory.mktemp("runs"))))
        t = Trainer(from_dict(raw), Channel(max_pending_metrics=8))
        t.setup()
        _trainer["t"] = t
    return _trainer["t"]


command_args = st.dictionaries(st.sampled_from(["value", "factor", "group", "mode", "name", "save"]),
                               st.one_of(scalars, st.sampled_from(["rescale", "override", "lr", *hot.HPARAMS]),
                                         st.lists(st.floats(), max_size=3)), max_size=4)
commands = st.builds(ev.Command, st.sampled_from(["set_lr", "set_hparam", "pause", "resume", "eval_now", "bogus"]),
                     command_args)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands)
def test_every_command_gets_an_answer_and_never_breaks_the_engine(tmp_path_factory, cmd):
    t = _live_trainer(tmp_path_factory)
    t.channel.drain()
    engine_commands.apply(t, cmd)
    answers = [e for e in t.channel.drain() if isinstance(e, (ev.CommandApplied, ev.CommandRejected))
               and e.command_id == cmd.id]
    assert len(answers) == 1
    if isinstance(answers[0], ev.CommandRejected):
        assert answers[0].reason
    for lr in t.schedule.lrs():
        assert math.isfinite(lr) and lr > 0
    t.paused = False
