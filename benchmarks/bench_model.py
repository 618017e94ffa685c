"""Model figures: the per-event step against re-running a window, and training throughput.

* ``step_p50_ms`` / ``step_p99_ms``: one ``StepModel.step`` (numpy) of the default-size model, one
  thread. ``predict_p50_ms``: a step plus the logits of all four heads (a whole prediction).
* ``window_p50_ms`` / ``window_p99_ms``: the seeds' way with the same weights: torch forward over the
  last 100 events for every prediction (no grad, one thread, logits of the last position only).
  ``step_speedup`` = window p50 / predict p50 (both produce the next event's logits).
* ``train_targets_per_s``: supervised targets per second of ``improv.train.train_step`` (loss on every
  position of ``batch_size x chunk_len`` chunks) at the default settings; ``seed_targets_per_s``: the
  seeds' scheme at the same model size in the same run (batches of 64 windows of 100 events,
  stride 1, loss on the last event only); ``train_vs_seed_ratio`` is the median ratio of bursts of the two taken side by side.

The timed parts run in a child process with one BLAS/OpenMP thread where a figure says "one
thread" (numpy's BLAS reads its thread count when it is first imported).
"""

from __future__ import annotations

import argparse
import time

from _common import child_main, run_child


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-steps", type=int, default=3000, help="model: steps timed for the step figures")
    parser.add_argument("--model-windows", type=int, default=300, help="model: window forwards timed")
    parser.add_argument("--model-train-seconds", type=float, default=20.0, help="model: seconds of each training scheme")


def run(args: argparse.Namespace) -> dict[str, float]:
    steps = getattr(args, "model_steps", 3000)
    windows = getattr(args, "model_windows", 300)
    seconds = getattr(args, "model_train_seconds", 20.0)
    one = run_child(__file__, "latency", {"steps": steps, "windows": windows}, threads=1)
    train = run_child(__file__, "train", {"seconds": seconds}, threads=0)
    figures = dict(one)
    figures["step_speedup"] = round(one["window_p50_ms"] / one["predict_p50_ms"], 1)
    figures.update(train)
    return figures


# ---- in the child process -----------------------------------------------------------------------


def _percentiles(samples: list[float]) -> tuple[float, float]:
    import numpy as np

    a = np.array(samples) * 1e3
    return round(float(np.percentile(a, 50)), 4), round(float(np.percentile(a, 99)), 4)


def _default_checkpoint():
    from improv.model.checkpoint import untrained_checkpoint
    from improv.settings.sections import ModelSettings

    return untrained_checkpoint(ModelSettings(), seed=0)


def _rows(n: int, sizes, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(0, min(s, 128), n) for s in sizes], axis=1).astype(np.uint8)
    rows[:, 2] = np.maximum(rows[:, 2], 1)
    return rows


def latency(steps: int, windows: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    ckpt = _default_checkpoint()
    model = ckpt.step_model()
    rows = _rows(steps + 200, ckpt.tokenizer.sizes)
    state = model.prime(rows[:100])
    for row in rows[100:200]:  # warm up
        state = model.step(state, row)
    step_t, predict_t = [], []
    clock = time.perf_counter
    for row, nxt in zip(rows[200:-1], rows[201:]):
        t0 = clock()
        state = model.step(state, row)
        t1 = clock()
        model.event_logits(state, nxt)
        t2 = clock()
        step_t.append(t1 - t0)
        predict_t.append(t2 - t0)
    net = ckpt.build_model().eval()
    window_t = []
    with torch.inference_mode():
        seq = torch.from_numpy(rows.astype("int64"))
        for i in range(windows + 10):
            window = seq[i : i + 100][None]
            target = seq[i + 100 : i + 101][None]
            t0 = clock()
            h, _ = net.hidden(window)
            net.heads(h[:, -1:], target)
            if i >= 10:
                window_t.append(clock() - t0)
    s50, s99 = _percentiles(step_t)
    p50, p99 = _percentiles(predict_t)
    w50, w99 = _percentiles(window_t)
    return {"step_p50_ms": s50, "step_p99_ms": s99, "predict_p50_ms": p50, "predict_p99_ms": p99, "window_p50_ms": w50, "window_p99_ms": w99}


def train_throughput(seconds: float) -> dict[str, float]:
    import numpy as np
    import torch

    from improv.model.network import ImprovNet, event_losses
    from improv.settings.sections import Settings
    from improv.training.batches import Batch
    from improv.training.distributed import Dist, set_threads
    from improv.training.step import make_optimizer, train_step

    settings = Settings()
    ts = settings.train
    threads = set_threads(ts.threads, Dist())
    sizes = ckpt_sizes()
    torch.manual_seed(0)
    net = ImprovNet(settings.model, sizes)
    opt = make_optimizer(net, ts)
    b, t = ts.batch_size, ts.chunk_len
    rows = _rows(b * t + 1, sizes, seed=1)
    batch = Batch(rows[:-1].reshape(b, t, 4), rows[1:].reshape(b, t, 4), np.ones((b, t), bool), np.zeros(b, bool))

    def ours():
        return train_step(net, opt, batch, None, ts, torch.device("cpu"))[1]

    # The seeds' scheme: 64 windows of 100 events (stride 1 over a stream), loss on the last event only.
    stream = torch.from_numpy(_rows(64 + 101, sizes, seed=2).astype("int64"))
    windows = torch.stack([stream[i : i + 101] for i in range(64)])
    net2 = ImprovNet(settings.model, sizes)
    opt2 = make_optimizer(net2, ts)

    def seed_step():
        net2.train()
        x, y = windows[:, :100], windows[:, 100:]
        h, _ = net2.hidden(x)
        logits = net2.heads(h[:, -1:], y)
        loss = event_losses(logits, y).sum()
        opt2.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net2.parameters(), ts.grad_clip)
        opt2.step()
        return 64

    # Alternate short bursts of the two and compare bursts taken side by side: the machine is
    # shared, so a slow patch then slows both alike instead of skewing the ratio.
    ours(), seed_step()  # warm up
    rounds = 5
    rates: dict[str, list[float]] = {"ours": [], "seed": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("seed", seed_step)):
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / (2 * rounds):
                done += fn()
            rates[name].append(done / (time.perf_counter() - start))
    ratios = [a / b for a, b in zip(rates["ours"], rates["seed"])]
    return {
        "train_targets_per_s": round(float(np.median(rates["ours"])), 1),
        "seed_targets_per_s": round(float(np.median(rates["seed"])), 1),
        "train_vs_seed_ratio": round(float(np.median(ratios)), 1),
        "train_threads": threads,
    }


def ckpt_sizes():
    from improv.music.tokenizer import Tokenizer
    from improv.settings.sections import TokenizerSettings

    return Tokenizer(TokenizerSettings()).sizes


if __name__ == "__main__":
    child_main({"latency": latency, "train": train_throughput})
