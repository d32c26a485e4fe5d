"""A deterministic event stream and a tiny fake engine thread, for UI tests.

Everything a chart or panel shows comes from these events (elapsed, ETA and
throughput included), so screenshots do not depend on the wall clock.
"""

from __future__ import annotations

import math
import random
import threading

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel

TOTAL = 2000


def run_started(grad_clip: float | None = 1.0) -> ev.RunStarted:
    return ev.RunStarted(
        run_dir="runs/demo-20250101-000000", device="cuda:0", precision="bf16",
        total_steps=TOTAL, steps_per_epoch=500, epochs=4, start_step=0, batch_size=64,
        groups=["backbone", "head"], schedule="cosine", grad_clip=grad_clip,
        num_params=1_234_567,
        config={"optim": {"weight_decay": 0.01, "betas": [0.9, 0.999]},
                "train": {"eval_every": 300}, "monitor": {"log_every": 20}})


def metrics(start: int, n: int, rnd: random.Random) -> ev.Metrics:
    steps = list(range(start + 1, start + n + 1))
    loss = [2.3 * math.exp(-s / 400) + 0.1 + 0.1 * rnd.random() for s in steps]
    grad = [0.5 + 0.8 * rnd.random() for _ in steps]
    lr = [1e-3 * (0.5 + 0.5 * math.cos(math.pi * s / TOTAL)) for s in steps]
    last = steps[-1]
    return ev.Metrics(
        steps=steps, loss=loss, grad_norm=grad, lr=lr, epoch=(last - 1) // 500 + 1,  # 1-based, as the engine counts
        lrs=[lr[-1], lr[-1] * 10], clipped=sum(g > 1 for g in grad), phase="decay",
        steps_per_s=42.0, samples_per_s=2688.0, elapsed=last / 42, eta=(TOTAL - last) / 42,
        total_steps=TOTAL,
        memory={"cuda_allocated_mb": 1430.0, "cuda_reserved_mb": 1907.0, "cuda_peak_mb": 1716.0,
                "gpu_util": 87.0, "gpu_temp_c": 64.0, "rss_mb": 3052.0})


def emit_run(ch: Channel, steps: int = 1200, per: int = 20, seed: int = 0,
             final: str | None = None) -> None:
    """A run from step 0 to `steps`: metrics, evals every 300, a few interventions."""
    rnd = random.Random(seed)
    ch.emit(run_started())
    ch.emit(ev.StatusChanged("running", 0))
    for start in range(0, steps, per):
        m = metrics(start, per, rnd)
        ch.emit(m)
        s = m.step
        if s % 300 == 0:
            ch.emit(ev.EvalDone(step=s, epoch=(s - 1) // 500 + 1, val_loss=m.loss[-1] + 0.05,
                                val_acc=0.5 + s / 4000, best_val_loss=m.loss[-1] + 0.05,
                                is_best=True))
        if s == 600:
            ch.emit(ev.CommandApplied(command_id=0, kind="set_lr", step=s, old=1e-3, new=5e-4))
        if s == 900:
            ch.emit(ev.CheckpointSaved(step=s, path="runs/demo/checkpoints/step-900.pt",
                                       reason="periodic"))
    if final:
        detail = "reached max_steps" if final == "finished" else "CUDA out of memory"
        ch.emit(ev.StatusChanged(final, steps, detail))


def profile_done(first: int, n: int, command_id: int | None = None) -> ev.ProfileDone:
    """What the trainer reports after profiling steps first..first+n-1 on a GPU."""
    ops = [("aten::convolution_backward", 41000.0, 5200.0, 30), ("aten::cudnn_convolution", 22000.0, 3100.0, 30),
           ("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__", 15000.0, 0.0, 5),
           ("aten::_foreach_addcdiv_", 9000.0, 800.0, 5), ("aten::native_batch_norm", 6000.0, 900.0, 30)]
    ops += [(f"aten::op_{i}", 500.0 - i, 100.0 - i, 10) for i in range(10)]  # 15 rows, as the engine sends
    total = sum(c for _, _, c, _ in ops)
    return ev.ProfileDone(
        step=first + n - 1, first_step=first, steps=n, asked=n,
        trace=f"runs/demo-20250101-000000/profile/steps-{first}-{first + n - 1}.json",
        top_ops=[{"name": name, "self_cpu_us": cpu, "self_cuda_us": cuda, "calls": calls, "pct": 100 * cuda / total}
                 for name, cpu, cuda, calls in ops],
        data_share=0.12, step_time=0.0213, data_time=0.0128 * n, activities=["cpu", "cuda"],
        source="command" if command_id is not None else "monitor.profile_steps", command_id=command_id)


class FakeEngine:
    """Answers commands like the trainer would, from a thread; records what it got."""

    def __init__(self, channel: Channel, step: int = 100):
        self.channel, self.step = channel, step
        self.received: list[ev.Command] = []
        self.lrs = [1e-3, 1e-2]
        self.thread = threading.Thread(target=self._loop, name="fake-engine", daemon=True)

    def start(self) -> threading.Thread:
        self.thread.start()
        return self.thread

    def _loop(self) -> None:
        ch = self.channel
        ch.emit(run_started())
        ch.emit(ev.StatusChanged("running", self.step))
        while True:
            cmd = ch.poll_command(timeout=0.01)
            if cmd is None:
                continue
            self.received.append(cmd)
            self.step += 1
            k = cmd.kind
            if k in ("pause", "resume"):
                ch.emit(ev.CommandApplied(cmd.id, k, self.step))
                ch.emit(ev.StatusChanged("paused" if k == "pause" else "running", self.step))
            elif k == "set_lr":
                old = list(self.lrs)
                a = cmd.args
                self.lrs = [a["value"] if a["value"] is not None else lr * a["factor"]
                            for lr in self.lrs]
                ch.emit(ev.CommandApplied(cmd.id, k, self.step, old=old[0], new=self.lrs[0]))
            elif k == "save_checkpoint":
                ch.emit(ev.CheckpointSaved(self.step, f"runs/x/ckpt-{self.step}.pt", "request"))
                ch.emit(ev.CommandApplied(cmd.id, k, self.step))
            elif k == "stop":
                ch.emit(ev.StatusChanged("stopping", self.step))
                if cmd.args.get("save", True):
                    ch.emit(ev.CheckpointSaved(self.step, "runs/x/last.pt", "stop"))
                ch.emit(ev.CommandApplied(cmd.id, k, self.step))
                ch.emit(ev.StatusChanged("stopped", self.step, "stopped on request"))
                return
            elif k == "profile":
                n = cmd.args["steps"]
                ch.emit(ev.CommandApplied(cmd.id, k, self.step, new=n,
                                          detail=f"profiling steps {self.step + 1}-{self.step + n}; the result follows"))
                ch.emit(profile_done(self.step + 1, n, command_id=cmd.id))
            else:
                ch.emit(ev.CommandApplied(cmd.id, k, self.step))
