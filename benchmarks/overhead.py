"""What does danlu cost a training run? Bare loop vs the engine, headless and with the dashboard.

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.overhead                  # both regimes, 7 rounds
    python -m benchmarks.overhead --regime mlp --rounds 9
    python -m benchmarks.overhead --regime mlp --variants b,c --rounds 12 --fresh   # a process per run

Variants, all on the same model, seed, steps and in-memory tensors (num_workers=0):

  a0  bare loop over pre-stacked batches (no DataLoader): reference only
  a   bare hand-written loop: DataLoader over the same TensorDataset, forward,
      backward, clip_grad_norm_, AdamW step, cosine scheduler step; no monitoring
  b   the danlu engine headless: `danlu run --headless`'s own code path
      (engine.headless.run_headless: the real Trainer from a Config, writing a run dir
      in a temp folder, in its own thread; the main thread drains the Channel into
      the progress line at 4 Hz), its output into a buffer
  c   the danlu engine with the dashboard live: create_app inside App.run_test()
      (headless Textual, 120x40), then start_engine once the first frame is drawn,
      redrawing as in real use
  d   the naive way: the bare loop plus .item() of loss and grad norm every step and
      a TensorBoard SummaryWriter.add_scalar of loss/lr/grad norm every step
      (only if tensorboard is importable; it is not a danlu dependency)
  r   b with a client attached over the control socket from another process, reading every
      event (a stand-in for `danlu attach`: the socket's whole cost to the run; the drawing
      happens in the other process)
  s   b with a client connected from another process that never reads
  ra  b with the real dashboard attached from another process (`danlu attach`'s app, drawing
      off-screen at 120x40): the attached view's cost to the run, next to c's in-process one

Controls and the control socket, only when asked for (--variants a,b,b2,ci,c,r,s,ra):

  b2  b again: two identical variants, so their paired ratio shows the box's own noise
  ci  c with the dashboard's drain turned off: Textual's own loop, no folding or drawing

Only the training steps are timed: for the engine, Trainer._train (data loader
iteration, steps, telemetry, the final flush); setup (dataset, model, run dir,
thread and app start) is not. Variants alternate within each round (the order
rotates), one discarded warm-up round first. Ratios are throughput ratios
(steps/s of the variant over steps/s of `a`), paired per round, median over rounds,
so a slow moment on a shared machine hits both sides of a pair; the bracket is a
distribution-free 95% confidence interval of that median (order statistics; with
fewer than 6 rounds it is just min-max). `on-cpu` is the training thread's CPU time over
the timed wall clock (median over rounds): what is missing it spent waiting, for the GIL
above all, so c's drop against b is the dashboard's GIL time, measured without the
round-to-round swings of the box's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.common import load, machine, median_ci, summary
from danlu.tui.cli import headless
from danlu.engine.control.channel import Channel
from danlu.engine.config.schema import from_dict
from danlu.engine.build.data import build_datasets
from danlu.engine.build.models import build_model
from danlu.engine.build.sampler import EpochSampler
from danlu.engine.loop.runner import start_engine
from danlu.engine.loop.trainer import Trainer

REGIMES = {
    # Python overhead shows: about a millisecond a step. 6,000 steps (4 epochs of 1,500) so the
    # one-off cost of starting the app (~0.3 s of the UI thread) is not most of what c measures.
    "mlp": dict(steps=6000, batch=32, data=dict(image_size=8, channels=1),
                model=dict(name="mlp", args={"hidden": [64, 64], "dropout": 0.0})),
    # configs/default.yaml's model and data, reduced: width 16, 16x16 images, batch 32.
    "cnn": dict(steps=600, batch=32, data=dict(image_size=16, channels=3),
                model=dict(name="small_cnn", args={"width": 16, "dropout": 0.1})),
}
LR, WD, BETAS, CLIP, SEED = 3e-3, 0.01, (0.9, 0.999), 1.0, 0
EPOCH_STEPS = 1500  # steps per epoch at most: the dataset is drawn once, in memory


def make_config(regime: str, out_dir: str):
    r = REGIMES[regime]
    epoch_steps = min(r["steps"], EPOCH_STEPS)
    size = epoch_steps * r["batch"]
    return from_dict({
        "run": {"name": f"bench-{regime}", "seed": SEED, "device": "cpu", "precision": "fp32", "out_dir": out_dir},
        "data": {"name": "benchmarks.common:bench_data", "batch_size": r["batch"], "num_workers": 0,
                 "val_fraction": 0.0, "args": {"size": size, **r["data"]}},
        "model": {**r["model"], "init": "default"},
        "optim": {"name": "adamw", "lr": LR, "weight_decay": WD, "betas": list(BETAS),
                  "no_decay_bias_norm": False},
        "schedule": {"name": "cosine", "warmup_steps": 0},
        "train": {"epochs": -(-r["steps"] // epoch_steps), "max_steps": r["steps"], "grad_clip": CLIP,
                  # no periodic checkpoint inside the timed steps (the bare loop writes none);
                  # with val_fraction 0 there is nothing to evaluate
                  "eval_every": None, "checkpoint_every": 10 * r["steps"]},
        "monitor": {"log_every": 10, "nan_policy": "pause"},
    }, source="<benchmark>")


# ---------------------------------------------------------------- timing the engine
_orig_train = Trainer._train
_last_result: list[tuple[float, int, float]] = []  # (seconds, steps, training-thread CPU s) per run


_client_mode: list[str] = []  # r, s: the training waits for the other process's client to connect


def _timed_train(self: Trainer) -> None:
    if _client_mode:
        deadline = time.monotonic() + 60
        while not self.control._clients and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.control._clients, "the client process did not connect"
    t0, c0, s0 = time.perf_counter(), time.thread_time(), self.step
    try:
        _orig_train(self)
    finally:
        _last_result.append((time.perf_counter() - t0, self.step - s0, time.thread_time() - c0))


Trainer._train = _timed_train  # one extra call per run, nothing per step


# ---------------------------------------------------------------- the variants
class Bare:
    """The hand-written loop, on the engine's own dataset and batch order."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.bundle = build_datasets(cfg.data, cfg.run.seed)
        n = len(self.bundle.train)
        order = EpochSampler(n, cfg.run.seed, 0).order()
        bs = cfg.data.batch_size
        ds = self.bundle.train
        self.batches = [ds[order[i:i + bs]] for i in range(0, n - bs + 1, bs)][: cfg.train.max_steps]

    def _model(self):
        torch.manual_seed(self.cfg.run.seed)
        model = build_model(self.cfg.model, self.bundle.num_classes, self.bundle.input_shape)
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD, betas=BETAS)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.cfg.train.max_steps)
        return model, opt, sched

    def _loader(self):
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.run.seed * 7919)
        return DataLoader(self.bundle.train, batch_size=cfg.data.batch_size, num_workers=0, drop_last=True,
                          sampler=EpochSampler(len(self.bundle.train), cfg.run.seed, 0), generator=g)

    def _epochs(self, stacked: bool):
        """Batches of as many epochs as the run takes (a new DataLoader pass for each, as the engine)."""
        while True:
            yield from self.batches if stacked else self._loader()

    def run(self, variant: str) -> tuple[float, int, float]:
        model, opt, sched = self._model()
        model.train()
        params = list(model.parameters())
        steps = self.cfg.train.max_steps
        writer = None
        if variant == "d":
            from torch.utils.tensorboard import SummaryWriter
            tmp = tempfile.TemporaryDirectory()
            writer = SummaryWriter(tmp.name)
        t0, c0 = time.perf_counter(), time.thread_time()
        n = 0
        for x, y in self._epochs(variant == "a0"):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, CLIP, foreach=None)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            n += 1
            if writer is not None:  # the naive monitor: two host syncs and three writes a step
                writer.add_scalar("loss", loss.item(), n)
                writer.add_scalar("lr", opt.param_groups[0]["lr"], n)
                writer.add_scalar("grad_norm", norm.item(), n)
            if n >= steps:
                break
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        if writer is not None:
            writer.close()
            tmp.cleanup()
        return dt, n, cpu


def run_headless(cfg) -> tuple[float, int, float]:
    """What `danlu run --headless` runs, the progress line printed into a buffer."""
    _last_result.clear()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = headless.run_headless(cfg)
    assert code == 0, out.getvalue()
    return _last_result[-1]


CLIENT = """
import glob, sys, time
from danlu.engine.control import socket_client as sc
out, mode = sys.argv[1], sys.argv[2]
while True:
    try:
        client = sc.connect(glob.glob(out + "/*/control.sock")[0].rsplit("/", 1)[0], name="bench")
        break
    except (IndexError, sc.NotLive, OSError):
        time.sleep(0.01)
if mode == "s":
    time.sleep(3600)
for e in client.events():
    pass
"""


ATTACHED = """
import glob, sys, time
from danlu.engine.control import socket_client as sc
from danlu.tui.app import create_app
out = sys.argv[1]
while True:
    try:
        client = sc.connect(glob.glob(out + "/*/control.sock")[0].rsplit("/", 1)[0], name="bench")
        break
    except (IndexError, sc.NotLive, OSError):
        time.sleep(0.01)
channel = sc.RemoteChannel(client)
create_app(channel, title="bench (attached)", remote=client.hello).run(headless=True, size=(120, 40))
"""


def run_headless_attached(cfg) -> tuple[float, int, float]:
    """b with the real dashboard attached from another process (what `danlu attach` runs, drawing
    off-screen at 120x40): its reading, folding and drawing happen in that process, not this one."""
    proc = subprocess.Popen([sys.executable, "-c", ATTACHED, cfg.run.out_dir])
    _client_mode[:] = ["r"]
    try:
        return run_headless(cfg)
    finally:
        _client_mode.clear()
        proc.kill()
        proc.wait()


def run_headless_with_client(cfg, mode: str) -> tuple[float, int, float]:
    """b with a client process on the control socket: reading everything (r) or nothing (s)."""
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, cfg.run.out_dir, mode])
    _client_mode[:] = [mode]
    try:
        return run_headless(cfg)
    finally:
        _client_mode.clear()
        proc.kill()
        proc.wait()


def run_dashboard(cfg) -> tuple[float, int, float]:
    from danlu.tui.app import create_app
    channel = Channel()
    app = create_app(channel, None, title="bench")

    async def go():
        async with app.run_test(size=(120, 40)) as pilot:
            # The engine starts once the app is up, as in `danlu run`, where building the dataset
            # and model takes longer than the app's first frame; here setup is near instant, and
            # the app's one-off start (CSS, layout: ~0.3 s of the UI thread) would land on the steps.
            await pilot.pause()
            app.engine_thread = start_engine(cfg, channel)
            # Wait in a worker thread: polling here would add wakeups of the UI thread (and so
            # GIL time) that `danlu run` does not have.
            await asyncio.get_running_loop().run_in_executor(None, app.engine_thread.join)
            await pilot.pause()

    _last_result.clear()
    asyncio.run(go())
    return _last_result[-1]


def run_dashboard_idle(cfg) -> tuple[float, int, float]:
    """c with the dashboard's drain turned off: what Textual's own loop costs the engine."""
    import danlu.tui.screens.dashboard as dash
    tick, dash.DashboardScreen.tick = dash.DashboardScreen.tick, lambda self: None
    try:
        return run_dashboard(cfg)
    finally:
        dash.DashboardScreen.tick = tick


def have_tensorboard() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
        return True
    except ImportError:
        return False


def _variants(cfg) -> dict:
    """Each variant as a call that trains once and returns (seconds, steps, training-thread CPU s)."""
    bare = None

    def bare_run(v):
        nonlocal bare
        bare = bare or Bare(cfg)  # the in-memory batches, built once, only if a bare variant runs
        return bare.run(v)

    return {"a0": lambda: bare_run("a0"), "a": lambda: bare_run("a"), "b": lambda: run_headless(cfg),
            "c": lambda: run_dashboard(cfg), "d": lambda: bare_run("d"),
            "b2": lambda: run_headless(cfg), "ci": lambda: run_dashboard_idle(cfg),
            "r": lambda: run_headless_with_client(cfg, "r"), "s": lambda: run_headless_with_client(cfg, "s"),
            "ra": lambda: run_headless_attached(cfg)}


def bench(regime: str, rounds: int, variants: list[str], fresh: bool = False,
          threads: int = 1) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(steps/s by wall clock, steps per CPU-second of the training thread), per variant, one entry per round.

    fresh: every run in a process of its own (`--one`), as `danlu run` is, so no run inherits
    the heap, caches or threads that earlier runs of other variants left in the process.
    """
    with tempfile.TemporaryDirectory() as out:
        cfg = make_config(regime, out)
        fns = _variants(cfg)
        rates: dict[str, list[float]] = {v: [] for v in variants}
        cpu_rates: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(rounds + (not fresh)):  # in one process, round 0 warms up and is dropped
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                dt, n, cpu = _run_fresh(regime, v, threads) if fresh else fns[v]()
                assert n == cfg.train.max_steps, (v, n)
                if r or fresh:
                    rates[v].append(n / dt)
                    cpu_rates[v].append(n / cpu)
        return rates, cpu_rates


def _run_fresh(regime: str, variant: str, threads: int) -> tuple[float, int, float]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.overhead", "--regime", regime, "--one", variant,
                          "--threads", str(threads)], capture_output=True, text=True, check=True)
    dt, n, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    return dt, n, cpu


def _one(regime: str, variant: str) -> None:
    """Train `variant` once in this process and print (seconds, steps, CPU s) as JSON."""
    with tempfile.TemporaryDirectory() as out:
        print(json.dumps(_variants(make_config(regime, out))[variant]()))


LABELS = {"a0": "bare, pre-stacked batches", "a": "bare loop (DataLoader)", "b": "danlu headless",
          "c": "danlu + dashboard", "d": "naive: .item() + TensorBoard",
          "b2": "b again (noise control)", "ci": "app live, dashboard drain off",
          "r": "b + a client reading (attach)", "s": "b + a client never reading",
          "ra": "b + dashboard, other process"}


def _ratios(rates: dict[str, list[float]], base: str) -> dict[str, list[float]]:
    return {v: [x / a for x, a in zip(xs, rates[base])] for v, xs in rates.items()}


def report(regime: str, rates: dict[str, list[float]], cpu_rates: dict[str, list[float]]) -> str:
    r = REGIMES[regime]
    base = "a" if "a" in rates else next(iter(rates))  # the bare loop, unless left out
    print(f"\n{regime}: {r['model']['name']} {r['model']['args']}, batch {r['batch']}, "
          f"{r['data']}, {r['steps']} steps, {len(rates[base])} rounds")
    wall, cpu = _ratios(rates, base), _ratios(cpu_rates, base)
    print(f"{'variant':34} {'steps/s':>8} {'min':>7} {'max':>7} {f'/{base} paired [95% CI]':>22}"
          f" {'steps/cpu-s':>12} {f'/{base} paired':>10} {'on-cpu':>7}")
    for v, xs in rates.items():
        med, lo, hi = summary(xs)
        pm, (plo, phi) = statistics.median(wall[v]), median_ci(wall[v])
        cm = statistics.median(cpu_rates[v])
        # share of the timed wall clock the training thread ran: the rest it waited (GIL, I/O)
        on_cpu = statistics.median(r / c for r, c in zip(xs, cpu_rates[v]))
        print(f"{v + '  ' + LABELS[v]:34} {med:8.1f} {lo:7.1f} {hi:7.1f} {pm:9.3f} [{plo:.3f}-{phi:.3f}]"
              f" {cm:12.1f} {statistics.median(cpu[v]):10.3f} {100 * on_cpu:6.1f}%")
    for v in ("c", "b2", "ci", "r", "s", "ra"):  # against b, paired (already the table's column when b is the base)
        if base != "b" and "b" in rates and v in rates:
            vb, vbc = _ratios(rates, "b")[v], _ratios(cpu_rates, "b")[v]
            lo, hi = median_ci(vb)
            print(f"{v}/b paired: wall {statistics.median(vb):.3f} [95% CI {lo:.3f}-{hi:.3f}], "
                  f"training-thread cpu {statistics.median(vbc):.3f}")
    return f"{regime}: " + " ".join(f"{v}/{base}={statistics.median(wall[v]):.3f}"
                                    for v in ("b", "c", "d", "r", "s", "ra") if v in wall and v != base)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=[*REGIMES, "all"], default="all")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--variants", default="a0,a,b,c,d")
    p.add_argument("--fresh", action="store_true",
                   help="each run in a new process (slower: ~4 s of imports a run), as danlu run is")
    p.add_argument("--one", metavar="VARIANT", help=argparse.SUPPRESS)  # one run, for --fresh
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: steadier on a shared box, and the training "
                        "thread's CPU time then covers all compute; 0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        return _one(args.regime, args.one)
    variants = [v for v in args.variants.split(",") if v]
    if "d" in variants and not have_tensorboard():
        print("tensorboard is not installed: variant d skipped (pip install tensorboard to run it)")
        variants.remove("d")
    print(machine())
    lines = []
    for regime in REGIMES if args.regime == "all" else [args.regime]:
        lines.append(report(regime, *bench(regime, args.rounds, variants, args.fresh, args.threads)))
    print(f"\nload avg at the end: {load()}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
