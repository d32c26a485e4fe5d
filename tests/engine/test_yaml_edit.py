"""Editing a config's text keeps what a person wrote: comments, blank lines, flow lists, key order."""

from __future__ import annotations

import pytest

from danlu.engine.config.files import parse_yaml
from danlu.engine.config.schema import PACKAGED_CONFIGS
from danlu.engine.config.yaml_edit import DELETE, EditError, edit, same_value, split_path

DEFAULT = (PACKAGED_CONFIGS / "default.yaml").read_text()


def comment_lines(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def test_edit_keeps_comments_and_layout():
    out = edit(DEFAULT, {"optim.lr": 0.0005, "optim.eps": 1e-6, "train.keep_last": DELETE})
    assert comment_lines(out) == comment_lines(DEFAULT)
    raw = parse_yaml(out)
    assert raw["optim"]["lr"] == 0.0005 and raw["optim"]["eps"] == 1e-6 and "keep_last" not in raw["train"]
    assert "betas: [0.9, 0.999]" in out  # flow lists stay flow
    assert "\n\nschedule:" in out  # the blank line before the next section stays there
    assert edit(DEFAULT, {}) == DEFAULT


def test_only_the_edited_line_changes():
    out = edit(DEFAULT, {"optim.lr": 0.0001})
    changed = [(a, b) for a, b in zip(DEFAULT.splitlines(), out.splitlines()) if a != b]
    assert changed == [("  lr: 0.003", "  lr: 0.0001")]


def test_new_keys_and_sections_are_added_and_nested_comments_survive():
    text = "data:\n  args:\n    size: 6000   # samples\n\nmodel:\n  name: mlp\n"
    out = edit(text, {"data.args": {"size": 100, "noise": 0.1}, "schedule.name": "cosine"})
    assert any(line.startswith("    size: 100") and "# samples" in line for line in out.splitlines())
    raw = parse_yaml(out)
    assert raw["data"]["args"] == {"size": 100, "noise": 0.1} and raw["schedule"] == {"name": "cosine"}
    assert raw["model"] == {"name": "mlp"}


def test_delete_a_missing_key_is_a_no_op_and_an_empty_file_stays_empty():
    assert edit("run:\n  name: a\n", {"optim.lr": DELETE}) == "run:\n  name: a\n"
    assert edit("", {"run.name": DELETE}) == ""


def test_broken_yaml_is_refused_not_rewritten():
    with pytest.raises(EditError):
        edit("run:\n  name: [\n", {"run.name": "x"})
    with pytest.raises(EditError):
        edit("- a\n- b\n", {"run.name": "x"})


def test_same_value_tells_kinds_apart():
    assert same_value(1.0, 1.0) and same_value([0.9, 0.999], (0.9, 0.999))
    assert not same_value(1, 1.0) and not same_value(1, True) and not same_value("1", 1)


def test_split_path():
    assert split_path("optim.param_groups[0].match") == ["optim", "param_groups", 0, "match"]
