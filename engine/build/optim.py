"""The optimizer: parameter groups from the config, and the hot changes a person may make mid-run."""

from __future__ import annotations

import re
from typing import Any

import torch

from ..config import hot
from ..config.knobs import OPTIMIZERS
from ..errors import UserError


class Change(tuple):
    """(old, new) of a hot change, unpacking as a pair, with a line of `detail` for the event log."""

    detail: str

    def __new__(cls, old: Any, new: Any, detail: str = "") -> Change:
        self = super().__new__(cls, (old, new))
        self.detail = detail
        return self


def _rule_get(rule: Any, key: str, default: Any = None) -> Any:
    # Rules arrive as dicts from YAML or as attribute objects from the validated config.
    if isinstance(rule, dict):
        return rule.get(key, default)
    return getattr(rule, key, default)


def build_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """The torch optimizer named by cfg, with one param group per rule (and its no-decay twin)."""
    cls_name, _, _ = OPTIMIZERS[cfg.name]
    args = dict(cfg.args or {})
    if "betas" in args:
        args["betas"] = tuple(args["betas"])
    rules = list(cfg.param_groups or [])
    patterns = []
    for i, rule in enumerate(rules):
        try:
            patterns.append(re.compile(_rule_get(rule, "match")))
        except (re.error, TypeError) as e:
            raise UserError(f"optim.param_groups[{i}].match: {_rule_get(rule, 'match')!r} "
                            f"is not a valid regular expression ({e})") from None

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise UserError("the model has no trainable parameters (every requires_grad is False)")
    # buckets[(rule index or -1, no_decay)] keeps parameters in model order within each group.
    buckets: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    matched_any = [False] * len(rules)
    for name, p in named:
        owner = -1
        for i, pat in enumerate(patterns):
            if pat.search(name):
                matched_any[i] = True
                if owner < 0:
                    owner = i
        no_decay = bool(cfg.no_decay_bias_norm) and p.ndim <= 1
        buckets.setdefault((owner, no_decay), []).append(p)

    sample = ", ".join(n for n, _ in named[:5]) + (", ..." if len(named) > 5 else "")
    for i, rule in enumerate(rules):
        pat = _rule_get(rule, "match")
        if not matched_any[i]:
            raise UserError(f"optim.param_groups[{i}].match: {pat!r} matches no parameter; "
                            f"names look like: {sample}")
        if not any(k[0] == i for k in buckets):
            raise UserError(f"optim.param_groups[{i}].match: {pat!r} matches only parameters "
                            f"that an earlier rule already took; put it before that rule or narrow it")

    groups = []
    for owner in [-1, *range(len(rules))]:
        rule = rules[owner] if owner >= 0 else None
        base_name = "default" if rule is None else (_rule_get(rule, "name") or _rule_get(rule, "match"))
        lr_mult = 1.0 if rule is None else float(_rule_get(rule, "lr_mult", 1.0) or 1.0)
        rule_wd = None if rule is None else _rule_get(rule, "weight_decay")
        for no_decay in (False, True):
            params = buckets.get((owner, no_decay))
            if not params:
                continue
            group: dict[str, Any] = {
                "params": params,
                "name": base_name + ("/no_decay" if no_decay else ""),
                "lr_mult": lr_mult,
                "lr": float(cfg.lr) * lr_mult,
                # set_hparam(weight_decay) for all groups leaves these alone: the config pinned them.
                "wd_pinned": no_decay or rule_wd is not None,
            }
            if no_decay:
                group["weight_decay"] = 0.0
            elif rule_wd is not None:
                group["weight_decay"] = float(rule_wd)
            groups.append(group)
    cls = getattr(torch.optim, cls_name)
    return cls(groups, lr=float(cfg.lr), **args)


def _opt_name(optimizer: torch.optim.Optimizer) -> str:
    return type(optimizer).__name__.lower()


def _pick_groups(optimizer: torch.optim.Optimizer, group: int | None) -> list[int]:
    n = len(optimizer.param_groups)
    if group is None:
        return list(range(n))
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < n:
        names = ", ".join(f"{i} {g.get('name', '')}".strip() for i, g in enumerate(optimizer.param_groups))
        raise ValueError(f"group {group!r} does not exist; groups are: {names}")
    return [group]


def set_hparam(optimizer: torch.optim.Optimizer, name: str, value: Any, group: int | None = None,
               schedule: Any = None) -> Change:
    """Change weight_decay, momentum or betas in place; returns (old, new) per group, with a detail line.

    Bounds come from the hot-settings table (config/hot.py), as in the config and the dialogs.
    """
    row = hot.HOT.get(name)
    if row is None or row.applied_by != "optimizer":
        raise ValueError(f"{name} is not an optimizer setting" if row else
                         f"{name!r} cannot change mid-run; hot settings are: {', '.join(hot.HOT)}")
    pgs = optimizer.param_groups
    idx = _pick_groups(optimizer, group)
    opt = _opt_name(optimizer)
    v = hot.check(name, value)
    if name == "weight_decay":
        return _set_weight_decay(pgs, idx, v, group)

    if getattr(schedule, "cycles_momentum", False):
        raise ValueError("onecycle cycles momentum every step; "
                         "set schedule.cycle_momentum=false to control it by hand")
    has_betas = "betas" in pgs[0]
    has_momentum = "momentum" in pgs[0]
    if name == "momentum":
        if not (has_momentum or has_betas):
            raise ValueError(f"momentum: {opt} has neither momentum nor betas to set")
        if has_momentum:
            if v == 0.0 and any(pgs[i].get("nesterov") for i in idx):
                raise ValueError("momentum: sgd with nesterov=true needs momentum > 0")
            read = lambda g: float(g["momentum"])  # noqa: E731
            old = [read(g) for g in pgs]
            for i in idx:
                pgs[i]["momentum"] = v
                _ensure_momentum_buffers(optimizer, pgs[i])
            return Change(old, [read(g) for g in pgs])
        read = lambda g: float(g["betas"][0])  # noqa: E731
        old = [read(g) for g in pgs]
        for i in idx:
            pgs[i]["betas"] = (v, pgs[i]["betas"][1])
        return Change(old, [read(g) for g in pgs],
                      f"{opt} has no momentum; set beta1 (betas[0]) to {v:g} instead")

    if not has_betas:
        hint = "; set momentum instead" if has_momentum else ""
        raise ValueError(f"betas: {opt} has no betas{hint}")
    read = lambda g: [float(x) for x in g["betas"]]  # noqa: E731
    old = [read(g) for g in pgs]
    for i in idx:
        pgs[i]["betas"] = tuple(v)
    return Change(old, [read(g) for g in pgs])


def _set_weight_decay(pgs: list[dict], idx: list[int], v: float, group: int | None) -> Change:
    old = [float(g["weight_decay"]) for g in pgs]
    targets = idx if group is not None else [i for i in idx if not pgs[i].get("wd_pinned")]
    if not targets:
        raise ValueError("weight_decay: every group has a weight decay fixed by the config; "
                         "name a group to change it anyway")
    for i in targets:
        pgs[i]["weight_decay"] = v
    skipped = [pgs[i].get("name", str(i)) for i in idx if i not in targets]
    detail = f"kept {', '.join(skipped)} as configured" if skipped else ""
    return Change(old, [float(g["weight_decay"]) for g in pgs], detail)


def _ensure_momentum_buffers(optimizer: torch.optim.Optimizer, group: dict) -> None:
    # RMSprop creates momentum buffers only when momentum > 0 at its first step and then
    # indexes them unconditionally, so turning momentum on later would crash without them.
    if not isinstance(optimizer, torch.optim.RMSprop) or group["momentum"] <= 0:
        return
    for p in group["params"]:
        state = optimizer.state.get(p)
        if state and "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
