"""Running the LR range test on real models: before a run (`danlu lr-find`) and mid-run on a copy.

Mid-run, the run must come out of the test exactly as it went in (the bugs of fastai and
Lightning were a model not restored, a stale optimizer, grads left behind). So nothing of the
run is restored here, because nothing of it is touched: the test trains a deepcopy of the model
and optimizer together (one deepcopy, so the copy's optimizer points at the copy's parameters),
on batches from a loader of its own, and the global RNGs (python, numpy, torch, CUDA) are saved
before and put back after, so dropout and augmentation in the run draw what they would have.
"""

from __future__ import annotations

from copy import deepcopy
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, RandomSampler

from ..build.data import DataBundle, loader_workers, stream_batches
from ..build.device import Placement
from ..build.fit import Fit
from .lr_find import LrFindResult, Sweep, sweep
from . import step

if TYPE_CHECKING:
    from .trainer import Trainer

# The margin the test leaves free: the batch's activations and the allocator's slack come on top.
FIT_MARGIN = 0.9


# ------------------------------------------------------------------ memory
def _tensor_bytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


@dataclass(frozen=True)
class Footprint:
    """What a copy for the test takes: weights (and buffers), their grads, the optimizer's state."""

    weights: int
    grads: int
    optimizer: int
    optimizer_estimated: bool   # the optimizer has no state yet (before its first step): 2x the weights assumed
    free: int | None            # what the device has free now (None: unknown)
    device: str

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer

    @property
    def fits(self) -> bool:
        return self.free is None or self.total <= FIT_MARGIN * self.free

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "grads": self.grads, "optimizer": self.optimizer,
                "optimizer_estimated": self.optimizer_estimated, "total": self.total, "free": self.free,
                "device": self.device, "fits": self.fits}


def footprint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> Footprint:
    """The test's extra memory, counted from the tensors themselves, and what the device has free."""
    weights = sum(_tensor_bytes(t) for t in model.parameters()) + sum(_tensor_bytes(b) for b in model.buffers())
    grads = sum(_tensor_bytes(p) for p in model.parameters() if p.requires_grad)
    opt = sum(_tensor_bytes(v) for st in optimizer.state.values() for v in st.values())
    estimated = opt == 0 and grads > 0
    if estimated:
        opt = 2 * grads   # Adam's two moments; SGD without momentum needs less, never more
    return Footprint(weights, grads, opt, estimated, free_memory(device), str(device))


def free_memory(device: torch.device) -> int | None:
    """Bytes free on the device: CUDA's free memory plus what torch's cache holds unused; the host's
    available memory on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "cpu":
        try:
            import psutil
        except ImportError:
            return None
        return int(psutil.virtual_memory().available)
    return None


# ------------------------------------------------------------------ RNG
def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may draw from."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np
        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ batches
def separate_batches(bundle: DataBundle, batch_size: int, num_workers: int, seed: int,
                     pin_memory: bool = False) -> Iterator[Any]:
    """Training batches in an order of the test's own (its own generator), forever; the run's
    loader, sampler and position are never touched."""
    ds = bundle.train
    if bundle.stream or isinstance(ds, IterableDataset):
        yield from stream_batches(ds, batch_size, num_workers, pin_memory, skip=0, seed=seed)
        return
    g = torch.Generator().manual_seed(seed)
    while True:
        loader = DataLoader(ds, batch_size=batch_size, sampler=RandomSampler(ds, generator=g),
                            num_workers=loader_workers(ds, num_workers), pin_memory=pin_memory,
                            drop_last=True, generator=g)
        seen = 0
        for batch in loader:
            seen += 1
            yield batch
        if seen == 0:
            raise ValueError(f"the training set has fewer than {batch_size} items: no full batch for the test")


# ------------------------------------------------------------------ the step
def make_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fit: Fit, placement: Placement,
              batches: Iterator[Any], *, accum: int = 1, grad_clip: float | None = None,
              scaler: torch.amp.GradScaler | None = None) -> Callable[[float], float]:
    """`train_step(lr)` for the sweep: every group at lr x its ratio to the first group, one
    optimizer step as the run takes it (accumulation, clipping, the fp16 scaler), its loss."""
    groups = optimizer.param_groups
    first = float(groups[0]["lr"]) or 1.0
    ratios = [float(g["lr"]) / first if first > 0 else 1.0 for g in groups]
    params = [p for g in groups for p in g["params"] if p.requires_grad]
    move_to = placement.device if placement.device.type != "cpu" else None
    model.train()

    def train_step(lr: float) -> float:
        for g, r in zip(groups, ratios):
            g["lr"] = lr * r
        total = 0.0
        for _ in range(accum):
            x, y = next(batches)
            loss = step.forward_backward(model, fit, placement, scaler, x, y, accum, move_to)
            total += float(loss.detach())  # one sync per micro-batch: the sweep reads every loss
        step.clip_grads(optimizer, scaler, params, grad_clip, None)
        step.update_weights(optimizer, scaler)
        return total

    return train_step


# ------------------------------------------------------------------ mid-run
def on_copy(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fit: Fit, placement: Placement,
            batches: Iterator[Any], sw: Sweep, *, accum: int = 1, grad_clip: float | None = None,
            scaler: torch.amp.GradScaler | None = None, should_stop: Callable[[], bool] = lambda: False,
            ) -> LrFindResult:
    """The test on a copy of the model and optimizer; the originals and the global RNGs are as before."""
    sw.check()
    saved = rng_state()
    try:
        try:
            m2, o2 = deepcopy((model, optimizer))
        except Exception as e:  # noqa: BLE001 - a model that cannot be copied: say so, the run goes on
            raise ValueError(f"the model and optimizer cannot be copied for the test ({type(e).__name__}: "
                             f"{str(e)[:200]}); the run itself is untouched (still paused). Run `danlu lr-find` "
                             "on the config instead.") from None
        s2 = None
        if scaler is not None:
            s2 = torch.amp.GradScaler(placement.device.type)
            s2.load_state_dict(scaler.state_dict())
        step = make_step(m2, o2, fit, placement, batches, accum=accum, grad_clip=grad_clip, scaler=s2)

        def guarded(lr: float) -> float:
            if should_stop():
                raise _Stopped
            return step(lr)

        try:
            return sweep(guarded, sw)
        except _Stopped:
            return LrFindResult(stopped="stopped: the run was asked to stop")
        except torch.OutOfMemoryError:
            raise ValueError("the LR range test ran out of memory on its copy; the run itself is untouched "
                             "(still paused). Resume, or free memory and try again.") from None
        except RuntimeError as e:  # the copy failed; the run must not fail with it
            raise ValueError(f"the LR range test failed on its copy ({str(e).splitlines()[0][:200]}); "
                             "the run itself is untouched (still paused)") from None
    finally:
        set_rng_state(saved)


class _Stopped(Exception):
    pass


def sweep_from_args(args: dict[str, Any]) -> Sweep:
    """The sweep a command (or the CLI) asks for; ValueError with the fix when it makes no sense."""
    d = Sweep()
    try:
        sw = Sweep(start=float(args.get("start") or d.start), end=float(args.get("end") or d.end),
                   steps=int(args.get("steps") or d.steps))
    except (TypeError, ValueError):
        raise ValueError(f"start, end and steps must be numbers, got {args}") from None
    sw.check()
    return sw


def check_fits(fp: Footprint) -> None:
    """ValueError with the numbers when the copy would not fit in the device's free memory."""
    if not fp.fits:
        raise ValueError(f"the LR range test needs {mib(fp.total)} more ({fp.device}: a copy of the weights, "
                         f"their grads and the optimizer state) but only {mib(fp.free)} is free; it was not run. "
                         "Free memory (a smaller batch, another process gone) or run `danlu lr-find` on the config "
                         "before the run.")


def during_run(t: Trainer, sw: Sweep, fp: Footprint) -> tuple[LrFindResult, Path]:
    """The test at a step boundary of a live run, on a copy; the result saved as lr_find/step-N.json."""
    cfg, step = t.cfg, t.progress.step
    # an order of its own, different at each step the test is run from
    batches = separate_batches(t.bundle, cfg.data.batch_size, cfg.data.num_workers,
                               seed=cfg.run.seed * 1_000_003 + step + 1, pin_memory=t.device.type == "cuda")
    try:
        result = on_copy(t.model, t.optimizer, t.fit, t.placement, batches, sw, accum=cfg.train.grad_accum,
                         grad_clip=t.hot["grad_clip"], scaler=t.state.scaler,
                         should_stop=t._external_stop.is_set)
    finally:
        batches.close()
        if t.device.type == "cuda":  # the copy is gone by now: give its cached blocks back
            torch.cuda.empty_cache()
    result.step = step
    path = save_result(result, t.run_dir / "lr_find" / f"step-{step}.json", memory=fp.to_dict(),
                       sweep={"start": sw.start, "end": sw.end, "steps": sw.steps})
    return result, path


def mib(n: int | None) -> str:
    """Bytes as people read them."""
    if n is None:
        return "unknown"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    return f"{n / (1 << 20):.1f} MiB"


def finite_or_none(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def save_result(result: LrFindResult, path: Path, **extra: Any) -> Path:
    """The result as JSON (lrs, losses, smoothed, suggestion, rule, ...), written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    data = {**result.to_dict(), **extra}
    data["losses"] = finite_or_none(data["losses"])  # strict JSON has no NaN
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ before a run
def before_run(cfg: Any, sw: Sweep, progress: Callable[[int, float, float], None] | None = None) -> LrFindResult:
    """The test on a fresh model built from `cfg` as a run would build it (data, model, init,
    optimizer, precision, grad_accum, grad_clip); the schedule and warmup play no part."""
    from ..config.preflight import preflight

    sw.check()
    preflight(cfg)
    # the editor runs this in its own process, which may train next: leave its global state as found
    saved = rng_state()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        return _before_run(cfg, sw, progress)
    finally:
        set_rng_state(saved)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _before_run(cfg: Any, sw: Sweep, progress: Callable[[int, float, float], None] | None) -> LrFindResult:
    from ..build.data import build_datasets
    from ..build.device import place
    from ..build.fit import fit_model
    from ..build.optim import build_optimizer

    random.seed(cfg.run.seed)
    torch.manual_seed(cfg.run.seed)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    placement = place(cfg.run.device, cfg.run.precision)
    bundle = build_datasets(cfg.data, cfg.run.seed)
    fit = fit_model(cfg, bundle, placement)
    fit.model.to(placement.device)
    optimizer = build_optimizer(fit.model, cfg.optim)
    scaler = torch.amp.GradScaler(placement.device.type) if placement.use_scaler else None
    batches = separate_batches(bundle, cfg.data.batch_size, cfg.data.num_workers, seed=cfg.run.seed,
                               pin_memory=placement.device.type == "cuda")
    step = make_step(fit.model, optimizer, fit, placement, batches, accum=cfg.train.grad_accum,
                     grad_clip=cfg.train.grad_clip, scaler=scaler)
    count = [0]

    def reporting(lr: float) -> float:
        loss = step(lr)
        count[0] += 1
        if progress is not None:
            progress(count[0], lr, loss)
        return loss

    try:
        return sweep(reporting, sw)
    finally:
        batches.close()
