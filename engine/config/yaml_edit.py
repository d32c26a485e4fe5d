"""Edit a YAML config file's text and keep everything a person wrote: comments, blank lines,
flow lists, quoting and key order. Pure: no textual, no torch.

`edit(text, {"optim.lr": 3e-4, "schedule.T_max": DELETE})` returns the new text. Each edit is
a round trip through ruamel.yaml, which keeps what PyYAML would drop. The editor's form and
`danlu lr-find --apply` write configs through it.
"""

from __future__ import annotations

import io
import re
from typing import Any


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()  # a value for edit(): remove the key


def split_path(path: str) -> list[str | int]:
    """'optim.param_groups[0].match' -> ['optim', 'param_groups', 0, 'match']."""
    return [int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[\]]+", path)]


def _rt(text: str):
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the user wrote on one
    try:
        _, indent, bsi = load_yaml_guess_indent(text)
    except Exception:  # noqa: BLE001 - unguessable: the house default
        indent, bsi = 2, 0
    indent = indent or 2
    bsi = bsi or 0
    y.indent(mapping=indent, sequence=indent + bsi, offset=bsi)
    return y


class EditError(ValueError):
    """The text cannot be edited structurally (YAML syntax error, not a mapping)."""


def edit(text: str, changes: dict[str, Any]) -> str:
    """`text` with each dotted path set to its value (or removed for DELETE), comments kept."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    y = _rt(text)
    try:
        doc = y.load(text)
    except YAMLError as e:
        raise EditError(f"the YAML does not parse: {e}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditError("the file must hold a mapping of sections")
    for path, value in changes.items():
        segs = split_path(path)
        parent = doc
        for seg in segs[:-1]:
            nxt = parent.get(seg) if isinstance(parent, dict) else None
            if not isinstance(nxt, dict):
                if value is DELETE:
                    break
                nxt = CommentedMap()
                _put(parent, seg, nxt)
            parent = nxt
        else:
            key = segs[-1]
            if value is DELETE:
                _delete(parent, key)
            else:
                _assign(parent, key, value)
    buf = io.StringIO()
    y.dump(doc, buf)
    out = buf.getvalue()
    if out.strip() == "{}":
        return ""
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind: 1 is not 1.0 and not true (the text would change)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and isinstance(a, float) == isinstance(b, float)
    return type(a) is type(b) and a == b if not isinstance(a, str) else isinstance(b, str) and a == b


def _node(value: Any) -> Any:
    """A ruamel node for a plain value: short lists in flow style, like [0.9, 0.999]."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _node(v)
        return m
    if isinstance(value, (list, tuple)):
        s = CommentedSeq(_node(v) for v in value)
        s.fa.set_flow_style()
        return s
    return value


def _assign(parent: Any, key: Any, value: Any) -> None:
    from ruamel.yaml.comments import CommentedMap

    old = parent.get(key, DELETE) if isinstance(parent, dict) else DELETE
    if isinstance(old, CommentedMap) and isinstance(value, dict):
        # key by key, so comments inside (data.args: size: 6000  # ...) survive
        for k in [k for k in old if k not in value]:
            _delete(old, k)
        for k, v in value.items():
            _assign(old, k, v)
        return
    if old is not DELETE and same_value(old, value):
        return
    _put(parent, key, _node(value))


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """The mapping and key that end `node` in the text (where trailing blank lines hang)."""
    from ruamel.yaml.comments import CommentedMap

    while isinstance(node, CommentedMap) and len(node):
        k = list(node)[-1]
        child = node[k]
        if isinstance(child, CommentedMap) and len(child) and not child.fa.flow_style():
            node = child
            continue
        return node, k
    return None


def _take_tail(node: Any) -> str | None:
    """Detach the blank lines and comments that follow `node`'s last line; return them."""
    slot = _last_slot(node)
    if slot is None:
        return None
    m, k = slot
    entry = m.ca.items.get(k)
    if not entry or len(entry) < 3 or entry[2] is None:
        return None
    tok = entry[2]
    head, _, rest = tok.value.partition("\n")
    if not rest:
        return None
    if head.strip():
        tok.value = head + "\n"
    else:
        entry[2] = None
        if not any(entry):
            del m.ca.items[k]
    return rest


def _give_tail(node: Any, key: Any, rest: str) -> None:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    value = node[key]
    slot = _last_slot(value) if hasattr(value, "ca") and not getattr(value.fa, "flow_style", lambda: True)() else None
    m, k = slot if slot else (node, key)
    entry = m.ca.items.setdefault(k, [None, None, None, None])
    if entry[2] is not None:
        entry[2].value = entry[2].value.rstrip("\n") + "\n" + rest
    else:
        entry[2] = CommentToken("\n" + rest, CommentMark(0), None)


def _put(parent: Any, key: Any, value: Any) -> None:
    """Set or add a key; a new last key takes over the blank lines that closed the mapping."""
    if key in parent:
        parent[key] = value
        return
    tail = _take_tail(parent)
    parent[key] = value
    if tail:
        _give_tail(parent, key, tail)


def _delete(parent: Any, key: Any) -> None:
    if not isinstance(parent, dict) or key not in parent:
        return
    keys = list(parent)
    tail = _take_tail(parent) if keys[-1] == key else None
    del parent[key]
    parent.ca.items.pop(key, None)
    if tail and len(parent):
        _give_tail(parent, list(parent)[-1], tail)
