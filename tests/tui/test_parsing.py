import math

import pytest

from danlu.tui.parsing import BadInput, LrChange, parse_hparam, parse_lr


@pytest.mark.parametrize("text, expected", [
    ("3e-4", LrChange(value=3e-4)),
    (" 0.001 ", LrChange(value=0.001)),
    ("1_000e-6", LrChange(value=1e-3)),
    ("x0.5", LrChange(factor=0.5)),
    ("X 2", LrChange(factor=2.0)),
    ("×0.1", LrChange(factor=0.1)),
    ("*2", LrChange(factor=2.0)),
    ("/2", LrChange(factor=0.5)),
    ("/ 4", LrChange(factor=0.25)),
])
def test_parse_lr_accepts(text, expected):
    assert parse_lr(text) == expected


@pytest.mark.parametrize("text, needle", [
    ("0", "> 0"), ("-1e-3", "> 0"), ("nan", "finite"), ("inf", "finite"),
    ("-inf", "finite"), ("fast", "not a number"), ("", "Type"), ("x0", "> 0"),
    ("/0", "> 0"), ("x-2", "> 0"), ("*nan", "finite"), ("xabc", "not a number"),
])
def test_parse_lr_rejects_with_a_message(text, needle):
    with pytest.raises(BadInput, match=needle):
        parse_lr(text)


def test_lr_change_applies():
    assert LrChange(factor=0.5).apply_to(1e-3) == pytest.approx(5e-4)
    assert LrChange(value=2e-4).apply_to(1e-3) == 2e-4


@pytest.mark.parametrize("name, text, value", [
    ("weight_decay", "0", 0.0), ("weight_decay", "0.05", 0.05),
    ("momentum", "0.9", 0.9), ("betas", "0.9, 0.95", (0.9, 0.95)),
    ("betas", "(0.8 0.99)", (0.8, 0.99)), ("grad_clip", "1.0", 1.0),
    ("grad_clip", "off", None), ("log_every", "10", 10), ("eval_every", "500", 500),
    ("checkpoint_every", "1e3", 1000),
])
def test_parse_hparam_accepts(name, text, value):
    assert parse_hparam(name, text) == value


@pytest.mark.parametrize("name, text", [
    ("weight_decay", "-0.1"), ("weight_decay", "nan"), ("momentum", "1.5"),
    ("betas", "0.9"), ("betas", "0.9, 1.0"), ("grad_clip", "0"), ("grad_clip", "-1"),
    ("log_every", "0"), ("eval_every", "2.5"), ("checkpoint_every", "soon"), ("momentum", "1"),
    ("weight_decay", "5"), ("log_every", "off"),
    ("batch_size", "32"), ("weight_decay", "inf"),
])
def test_parse_hparam_rejects(name, text):
    with pytest.raises(BadInput):
        parse_hparam(name, text)


def test_messages_say_what_to_do():
    with pytest.raises(BadInput) as e:
        parse_hparam("grad_clip", "0")
    assert "off" in str(e.value)
    with pytest.raises(BadInput) as e:
        parse_hparam("batch_size", "32")
    assert "restart" in str(e.value)
    with pytest.raises(BadInput) as e:
        parse_hparam("momentum", "1")
    assert "[0, 1)" in str(e.value)
    assert not math.isnan(parse_lr("1e-3").value)
