"""`improv train`: the training loop, resumable and distributed. Functions only, nothing at import.

One optimiser step trains on ``batch_size`` rows of ``chunk_len`` events with a loss on every
position (truncated BPTT; ``improv.data`` says how chunks are made and why). Validation is the
NLL per event of whole held-out pieces from a zero state, BOS to EOS, the way `improv eval`
measures it. AdamW, linear warm-up then cosine decay, gradient clipping, early stopping.

Files: ``--out`` (the best model, no optimiser state: small, what you ship) and ``NAME.last.pt``
beside it (the latest weights plus everything ``--resume`` needs: optimiser, step, position in the
epoch, recurrent state carried between chunks, every random state). Both are written atomically.
Ctrl-C or SIGTERM asks the loop to stop after the current step; it then writes ``last`` and exits.

Distributed: under ``torchrun`` (``WORLD_SIZE`` set) each process trains its own rows of every
batch with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 alone writes and prints.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .config import Settings, TrainSettings, section_from_dict
from .errors import ImprovError
from .system import check_writable, default_threads

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    import torch
    from tqdm import tqdm

    from .checkpoint import Checkpoint
    from .corpus import Piece
    from .data import Augmenter, Batch
    from .model import ImprovNet, State
    from .tokenizer import Tokenizer


class TrainError(ImprovError):
    """Bad training input: no data, nothing to resume, a changed corpus."""


@dataclass
class Dist:
    """Where this process sits in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class Progress:
    """Counters of the run, all restored by --resume."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch of `epoch`
    best_val_loss: float = math.inf
    bad_validations: int = 0
    seconds: float = 0.0
    total_steps: int = 0
    loss_sum: float = 0.0  # since the last validation, weighted by targets
    loss_count: int = 0
    targets_seen: int = 0
    step_seconds: float = 0.0  # time inside optimiser steps (the events/s figure)
    steps_since_val: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


# ---- paths and small helpers --------------------------------------------------------------------


def last_path(out: str | os.PathLike[str]) -> Path:
    """``model.pt`` -> ``model.last.pt``: the resumable checkpoint beside the best one."""
    out = Path(out)
    return out.with_name(f"{out.stem}.last{out.suffix or '.pt'}")


def plot_path(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.loss.png")


def lr_at(step: int, ts: TrainSettings, total_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``."""
    if ts.warmup_steps and step < ts.warmup_steps:
        return ts.lr * (step + 1) / ts.warmup_steps
    span = max(total_steps - ts.warmup_steps, 1)
    t = min(max(step - ts.warmup_steps, 0) / span, 1.0)
    return ts.lr * (ts.min_lr_ratio + (1 - ts.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def pick_device(name: str, dist: Dist) -> torch.device:
    """``auto``: cuda, then mps, else cpu. Under torchrun each process takes its local GPU."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but torch sees no CUDA GPU")
        if name == "cuda":
            name = f"cuda:{dist.local_rank if dist.enabled else 0}"
    elif name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise TrainError("device 'mps' asked for, but this torch has no MPS support here")
    return torch.device(name)


def set_threads(threads: int, dist: Dist) -> int:
    """CPU threads for torch; 0 = ``system.default_threads``: half the usable cores (CPU affinity),
    shared among the processes of this run on this machine (why not every core: see there)."""
    import torch

    if threads <= 0:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world if dist.enabled else 1))
        threads = default_threads(local)
    torch.set_num_threads(threads)
    return threads


# ---- distributed --------------------------------------------------------------------------------


def init_distributed(device_name: str) -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is world 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as td

    dist = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not td.is_initialized():
        use_nccl = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        if use_nccl:
            torch.cuda.set_device(dist.local_rank)
        td.init_process_group("nccl" if use_nccl else "gloo")
    return dist


def all_sum(values: Sequence[float], dist: Dist, device: torch.device) -> list[float]:
    """Sum numbers over all processes (identity in a one-process run)."""
    if not dist.enabled:
        return [float(v) for v in values]
    import torch
    import torch.distributed as td

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def gather(obj: Any, dist: Dist) -> list[Any]:
    """Every process's ``obj`` (a list of one in a one-process run)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


# ---- data ---------------------------------------------------------------------------------------


def load_pieces(sources: Sequence[str], tokenizer: Tokenizer, settings: Settings, dist: Dist, show_progress: bool) -> list[Piece]:
    """The corpus's pieces; rank 0 parses first so the others read its cache."""
    from .corpus import load_corpus, skipped_lines

    if not sources:
        raise TrainError("no training data given (use --data PATH or train.data in the config)")
    pieces = None
    if dist.main:
        pieces, report = load_corpus(list(sources), tokenizer, settings.corpus, progress=show_progress)
    barrier(dist)
    if not dist.main:
        pieces, report = load_corpus(list(sources), tokenizer, settings.corpus, progress=False)
    usable = [p for p in pieces if len(p.tokens) >= 3]
    lines = skipped_lines(report.skipped)
    if not usable:
        why = f"; skipped {lines[0]}" + (f" (and {len(report.skipped) - 1} more)" if len(report.skipped) > 1 else "") if lines else ""
        raise TrainError(f"no usable pieces in {', '.join(sources)}{why}")
    if dist.main and lines:  # nothing is lost silently: what was left out, and why
        print(f"improv train: skipped {len(report.skipped)} of {report.files} files:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
    return usable


def choose_split(pieces: list[Piece], ts: TrainSettings, record: dict[str, Any] | None) -> tuple[list[Piece], list[Piece]]:
    """The seeded split by piece, or on --resume exactly the split recorded in the checkpoint."""
    from .data import split_pieces

    if record is None:
        train, val = split_pieces(pieces, ts.val_fraction, ts.seed)
        if not train:
            raise TrainError("no pieces left to train on after holding out the validation pieces")
        return train, val
    by_name = {p.name: p for p in pieces}
    wanted_train, wanted_val = list(record.get("train_pieces", [])), list(record.get("heldout", []))
    missing = [n for n in wanted_train + wanted_val if n not in by_name]
    if missing:
        raise TrainError(f"the data changed since this run started: {len(missing)} of its pieces are missing (e.g. {missing[0]!r})")
    return [by_name[n] for n in wanted_train], [by_name[n] for n in wanted_val]


# ---- model, optimiser, one step -----------------------------------------------------------------


def make_optimizer(model: torch.nn.Module, ts: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and embeddings (decay there only shrinks rare classes)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name and "cond." not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": ts.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=ts.lr, betas=(0.9, 0.99))


def to_tensors(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch.inputs)).to(device).long()
    y = torch.from_numpy(np.ascontiguousarray(batch.targets)).to(device).long()
    m = torch.from_numpy(np.ascontiguousarray(batch.mask)).to(device)
    return x, y, m


def reset_rows(state: State | None, reset: np.ndarray, device: torch.device) -> State | None:
    """Zero the carried state of rows that start a new piece at this chunk."""
    import torch

    if state is None:
        return None
    keep = torch.from_numpy(~reset).to(device=device, dtype=torch.float32)[None, :, None]
    if isinstance(state, tuple):
        return tuple(s * keep for s in state)
    return state * keep


def detach(state: State | None) -> State | None:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, state: State | None, ts: TrainSettings, device: torch.device) -> tuple[float, int, State]:
    """One optimiser step on one batch of chunks: (mean loss, targets, carried state)."""
    import torch

    from .model import event_losses

    model.train()
    x, y, m = to_tensors(batch, device)
    logits, new_state = model(x, y, reset_rows(state, batch.reset, device))
    nll = event_losses(logits, y, reduction="none").sum(0)
    count = int(batch.mask.sum())
    loss = (nll * m).sum() / max(count, 1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), ts.grad_clip)
    optimizer.step()
    return float(loss.detach()), count, detach(new_state)


def evaluate(model: torch.nn.Module, pieces: Sequence[Piece], device: torch.device, dist: Dist) -> tuple[float, list[float]]:
    """NLL per event of whole pieces from a zero state (BOS ... EOS): (total, per field)."""
    import torch

    from .data import piece_batches
    from .model import event_losses

    net = getattr(model, "module", model)
    net.eval()
    sums = np.zeros(5)
    with torch.no_grad():
        for batch in piece_batches(pieces)[dist.rank :: dist.world]:
            x, y, m = to_tensors(batch, device)
            logits, _ = net(x, y)
            nll = event_losses(logits, y, reduction="none")  # (4, B, T)
            sums[:4] += (nll * m).sum(dim=(1, 2)).double().cpu().numpy()
            sums[4] += float(m.sum())
    total = all_sum(sums.tolist(), dist, device)
    count = max(total[4], 1.0)
    fields = [v / count for v in total[:4]]
    return float(sum(fields)) if total[4] else float("nan"), fields


# ---- random states and resume -------------------------------------------------------------------


def random_states(device: torch.device) -> dict[str, Any]:
    import torch

    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_random_states(states: dict[str, Any], device: torch.device) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def state_to_cpu(state: State | None) -> State | None:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach().cpu() for s in state)
    return state.detach().cpu()


def state_to_device(state: State | list[torch.Tensor] | None, device: torch.device) -> State | None:
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(s.to(device) for s in state)
    return state.to(device)


# ---- checkpoints and the plot -------------------------------------------------------------------


def training_record(run: Run, progress: Progress, val_loss: float, train_loss: float) -> dict[str, Any]:
    """The ``Checkpoint.train`` dict (keys pinned in DEVELOPERS.md)."""
    return {
        "data": list(run.ts.data),
        "heldout": [p.name for p in run.val],
        "train_pieces": [p.name for p in run.train],
        "settings": asdict(run.ts),
        "step": progress.step,
        "epoch": progress.epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best_val_loss": progress.best_val_loss,
        "unigram_val_loss": run.unigram,
        "history": list(progress.history),
        "device": str(run.device),
        "processes": run.dist.world,
        "seconds": round(progress.seconds, 1),
        "events_per_s": run.events_per_s(progress),
    }


def save(run: Run, path: Path, progress: Progress, val_loss: float, train_loss: float, resumable: bool, carry: State | None = None) -> None:
    """Write one checkpoint (collective in a distributed run: every rank must call it)."""
    from .checkpoint import Checkpoint, save_checkpoint

    resume = None
    if resumable:
        mine = {"rng": random_states(run.device), "carry": state_to_cpu(carry)}
        ranks = gather(mine, run.dist)
        resume = {
            "optimizer": run.optimizer.state_dict(),
            "progress": {k: v for k, v in asdict(progress).items() if k != "history"},
            "world": run.dist.world,
            "ranks": ranks,
        }
    if not run.dist.main:
        return
    weights = {k: v.detach().cpu().clone() for k, v in run.net.state_dict().items()}
    ckpt = Checkpoint(run.settings.model, run.tokenizer, weights, train=training_record(run, progress, val_loss, train_loss), resume=resume)
    try:
        save_checkpoint(path, ckpt)
    except OSError as exc:  # the folder was checked at the start; a full disk, or it went away since
        raise TrainError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def write_plot(path: Path, history: list[dict[str, Any]], unigram: float) -> bool:
    """Train and validation loss against steps, as a PNG (written atomically). False if no data."""
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["train_loss"] for h in history], label="train", marker=".")
    ax.plot(steps, [h["val_loss"] for h in history], label="validation (whole pieces)", marker=".")
    if math.isfinite(unigram):
        ax.axhline(unigram, color="grey", linestyle="--", label="unigram baseline")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("NLL per event (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything one training run holds (built by ``prepare``)."""

    settings: Settings
    ts: TrainSettings
    dist: Dist
    device: torch.device
    tokenizer: Tokenizer
    train: list[Piece]
    val: list[Piece]  # empty: no validation (one source piece, or val_fraction 0)
    net: ImprovNet
    model: torch.nn.Module  # net, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    augmenter: Augmenter
    unigram: float  # the unigram baseline's NLL on the validation pieces (NaN without any)
    out: Path
    started: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0

    def events_per_s(self, progress: Progress) -> float:
        return round(progress.targets_seen / max(progress.step_seconds, 1e-9), 1)

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


class StopFlag:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary; a second SIGINT is immediate."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def prepare(settings: Settings, resume: bool, overrides: dict[str, Any], pieces: list[Piece] | None, dist: Dist, show_progress: bool) -> tuple[Run, Progress, State | None]:
    """Build the run: settings (the checkpoint's on --resume), data split, model, optimiser."""
    import torch

    from .checkpoint import load_checkpoint
    from .data import Augmenter
    from .model import ImprovNet
    from .tokenizer import Tokenizer

    ts = replace(settings.train, **{k: v for k, v in overrides.items() if v is not None})
    ckpt = None
    if resume:
        path = last_path(ts.out)
        if not path.exists():
            raise TrainError(f"nothing to resume: {path} does not exist (train without --resume first)")
        ckpt = load_checkpoint(path)
        if ckpt.resume is None:
            raise TrainError(f"{path} holds no resume state")
        recorded = section_from_dict(TrainSettings, dict(ckpt.train["settings"]), "train")
        # The run continues with its own settings; only what was named on the command line changes.
        ts = replace(recorded, out=ts.out, **{k: v for k, v in overrides.items() if v is not None and k in ("epochs", "max_steps", "device")})
        settings = replace(settings, model=ckpt.model_settings, tokenizer=ckpt.tokenizer.settings, train=ts)
    else:
        settings = replace(settings, train=ts)
    if dist.main:
        check_writable(ts.out)  # before the data and the epochs: not a traceback after them
    device = pick_device(ts.device, dist)
    set_threads(ts.threads, dist)
    tokenizer = Tokenizer(settings.tokenizer)
    if pieces is None:
        pieces = load_pieces(ts.data, tokenizer, settings, dist, show_progress)
    train, val = choose_split(pieces, ts, ckpt.train if ckpt else None)
    seed_everything(ts.seed)  # the same initial weights on every rank
    net = ImprovNet(settings.model, tokenizer.sizes).to(device)
    if ckpt is not None:
        net.load_state_dict(ckpt.weights)
    model = net
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(net, ts)
    augmenter = Augmenter(tokenizer, ts.transpose, ts.tempo_stretch, transpose_by=ts.transpose_by)
    run = Run(settings, ts, dist, device, tokenizer, train, val, net, model, optimizer, augmenter, unigram_baseline(train, val, tokenizer.sizes), Path(ts.out))
    progress = Progress()
    carry = None
    if ckpt is not None:
        carry = restore(run, ckpt, progress)
        if (ts.epochs, ts.max_steps) != (recorded.epochs, recorded.max_steps):
            progress.total_steps = 0  # a longer (or shorter) run: the schedule follows the new length
    else:
        torch.manual_seed(ts.seed * 1009 + 1 + dist.rank)  # each rank its own dropout masks
    return run, progress, carry


def unigram_baseline(train: Sequence[Piece], val: Sequence[Piece], sizes: Sequence[int]) -> float:
    """NLL per event on the validation pieces of ``markov.UnigramModel`` fitted on the training
    pieces: the same baseline (and number) as `improv eval`'s ``unigram_nll``; NaN without any."""
    from .markov import UnigramModel

    if not val:
        return float("nan")
    total, count = UnigramModel(sizes).fit([p.tokens for p in train]).nll([p.tokens for p in val])
    return float(total.sum() / max(count, 1))


def restore(run: Run, ckpt: Checkpoint, progress: Progress) -> State | None:
    """Optimiser, counters, random states and carried state from the last checkpoint."""
    state = ckpt.resume
    run.optimizer.load_state_dict(state["optimizer"])
    for key, value in state["progress"].items():
        if hasattr(progress, key):
            setattr(progress, key, value)
    progress.history = list(ckpt.train.get("history", []))
    run.seconds_before = progress.seconds
    if state.get("world") != run.dist.world:
        if run.dist.main:
            print(f"improv: warning: resuming on {run.dist.world} processes, not {state.get('world')}: continues, but not bit-exact", file=sys.stderr)
        return None
    mine = state["ranks"][run.dist.rank]
    set_random_states(mine["rng"], run.device)
    return state_to_device(mine["carry"], run.device)


def planned_steps(run: Run, steps_per_epoch: int) -> int:
    total = run.ts.epochs * steps_per_epoch
    return min(total, run.ts.max_steps) if run.ts.max_steps else total


def validate(run: Run, progress: Progress, lr: float) -> tuple[float, bool]:
    """Validation loss, history entry, early-stopping count. Returns (val_loss, improved)."""
    val_loss, fields = evaluate(run.model, run.val, run.device, run.dist) if run.val else (float("nan"), [])
    sums = all_sum([progress.loss_sum, progress.loss_count], run.dist, run.device)
    train_loss = sums[0] / sums[1] if sums[1] else float("nan")
    progress.loss_sum, progress.loss_count, progress.steps_since_val = 0.0, 0, 0
    progress.seconds = run.elapsed()
    improved = math.isfinite(val_loss) and val_loss < progress.best_val_loss
    if improved:
        progress.best_val_loss = val_loss
        progress.bad_validations = 0
    elif run.val:  # without validation pieces nothing can improve: early stopping must not count it
        progress.bad_validations += 1
    progress.history.append(
        {
            "step": progress.step,
            "epoch": progress.epoch,
            "train_loss": round(train_loss, 5),
            "val_loss": round(val_loss, 5),
            "val_fields": [round(f, 5) for f in fields],
            "lr": lr,
            "events_per_s": run.events_per_s(progress) * run.dist.world,
        }
    )
    return val_loss, improved


def train(
    settings: Settings,
    *,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    pieces: list[Piece] | None = None,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) and return the summary. ``overrides``: values named on the command line
    (``epochs``, ``max_steps``, ``seed``, ``device``, ``out``, ``data``); ``pieces``: skip the corpus
    loader (tests). Raises ``KeyboardInterrupt`` after saving ``last`` when asked to stop."""
    dist = init_distributed((overrides or {}).get("device") or settings.train.device)
    try:
        if show_progress is None:
            show_progress = sys.stderr.isatty()
        show_progress = show_progress and dist.main
        log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        run, progress, carry = prepare(settings, resume, dict(overrides or {}), pieces, dist, show_progress)
        return loop(run, progress, carry, show_progress, log if dist.main else (lambda line: None))
    finally:
        if dist.enabled:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()


def loop(run: Run, progress: Progress, carry: State | None, show_progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """The epochs; returns the summary dict (see ``summary``)."""
    from .data import plan_epoch

    ts = run.ts
    plan = plan_epoch(run.train, run.augmenter, ts.batch_size, ts.chunk_len, ts.seed, progress.epoch, ts.crop, run.dist.rank, run.dist.world, ts.chunking)
    if not progress.total_steps:
        progress.total_steps = planned_steps(run, len(plan))
    if progress.step == 0 and run.dist.main:
        baseline = f"; unigram baseline {run.unigram:.3f}" if run.val else ""
        log(f"training on {len(run.train)} pieces ({sum(len(p.tokens) for p in run.train)} events), validating on {len(run.val)}; device {run.device}, {run.dist.world} process(es){baseline}")
        if not run.val:
            why = "train.val_fraction is 0" if ts.val_fraction == 0 else "a single piece is never held out"
            log(f"no validation pieces ({why}): the model of every validation step is saved and early stopping is off")
    bar = make_bar(progress, show_progress)
    last_val, last_train = math.nan, math.nan
    stop_reason = "epochs"
    lr = lr_at(progress.step, ts, progress.total_steps)
    with StopFlag() as stop:
        while progress.epoch < ts.epochs:
            if plan is None:
                plan = plan_epoch(run.train, run.augmenter, ts.batch_size, ts.chunk_len, ts.seed, progress.epoch, ts.crop, run.dist.rank, run.dist.world, ts.chunking)
            while progress.batch < len(plan):
                if ts.max_steps and progress.step >= ts.max_steps:
                    break
                lr = lr_at(progress.step, ts, progress.total_steps)
                for group in run.optimizer.param_groups:
                    group["lr"] = lr
                batch = plan.batch(progress.batch)
                began = time.perf_counter()
                loss, count, carry = train_step(run.model, run.optimizer, batch, carry, ts, run.device)
                progress.step_seconds += time.perf_counter() - began
                progress.step += 1
                progress.steps_since_val += 1
                progress.batch += 1
                progress.loss_sum += loss * count
                progress.loss_count += count
                progress.targets_seen += count
                progress.seconds = run.elapsed()
                update_bar(bar, run, progress, loss)
                if stop_requested(stop, run):
                    save(run, last_path(run.out), progress, last_val, last_train, resumable=True, carry=carry)
                    close_bar(bar)
                    log(f"interrupted at step {progress.step}; {last_path(run.out)} saved, continue with --resume")
                    raise KeyboardInterrupt
                if ts.val_every and progress.step % ts.val_every == 0:
                    last_val, last_train, stop_now = checkpoint_and_check(run, progress, lr, carry, log, bar)
                    if stop_now:
                        stop_reason = "early stopping"
                        break
            if stop_reason == "early stopping":
                break
            hit_max = bool(ts.max_steps and progress.step >= ts.max_steps)
            if not hit_max:
                progress.epoch += 1
                progress.batch = 0
                plan = None
                carry = None
            if progress.steps_since_val:  # nothing new to validate after a val_every step, or on a finished run
                last_val, last_train, stop_now = checkpoint_and_check(run, progress, lr, carry, log, bar)
                if stop_now:
                    stop_reason = "early stopping"
                    break
            if hit_max:
                stop_reason = "max_steps"
                break
    close_bar(bar)
    return finish(run, progress, last_val, last_train, stop_reason, log)


def stop_requested(stop: StopFlag, run: Run) -> bool:
    """Agreed by every rank (so that all of them save and stop at the same step)."""
    if not run.dist.enabled:
        return stop.requested
    return all_sum([1.0 if stop.requested else 0.0], run.dist, run.device)[0] > 0


def checkpoint_and_check(run: Run, progress: Progress, lr: float, carry: State | None, log: Callable[[str], None], bar: tqdm | None) -> tuple[float, float, bool]:
    """Validate, write best (if better) and last, log a line; True when early stopping says stop."""
    val_loss, improved = validate(run, progress, lr)
    train_loss = progress.history[-1]["train_loss"]
    if improved or not run.val:
        save(run, run.out, progress, val_loss, train_loss, resumable=False)
    save(run, last_path(run.out), progress, val_loss, train_loss, resumable=True, carry=carry)
    if run.val:
        val = f"val {val_loss:.4f} (best {progress.best_val_loss:.4f}{', saved' if improved else ''})"
    else:
        val = "no validation (saved)"
    line = (
        f"epoch {progress.epoch}/{run.ts.epochs} step {progress.step}: train {train_loss:.4f} {val} lr {lr:.2e} "
        f"{progress.history[-1]['events_per_s']:.0f} ev/s {progress.seconds:.0f} s"
    )
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        log(line)
    stop = bool(run.ts.patience and progress.bad_validations >= run.ts.patience)
    if stop:
        log(f"early stopping: no improvement in {run.ts.patience} validations")
    return val_loss, train_loss, stop


def finish(run: Run, progress: Progress, val_loss: float, train_loss: float, reason: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The plot and the summary (rank 0 writes; all ranks return it)."""
    if not math.isfinite(val_loss) and progress.history:  # a resumed run that had nothing left to do
        val_loss, train_loss = progress.history[-1]["val_loss"], progress.history[-1]["train_loss"]
    plot = plot_path(run.out)
    wrote_plot = False
    if run.dist.main:
        try:
            wrote_plot = write_plot(plot, progress.history, run.unigram)
        except OSError as exc:  # the checkpoints are written: a missing plot is worth a line, not the run
            log(f"warning: cannot write the loss plot {plot}: {exc.strerror or exc}")
        if run.val:
            log(f"done ({reason}): best val {progress.best_val_loss:.4f} (unigram {run.unigram:.4f}) -> {run.out}")
        else:
            log(f"done ({reason}): the last model -> {run.out} (nothing to validate on)")
    return {
        "steps": progress.step,
        "epochs": progress.epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best_val_loss": progress.best_val_loss if math.isfinite(progress.best_val_loss) else None,
        "unigram_val_loss": run.unigram,
        "checkpoint": str(run.out),
        "last_checkpoint": str(last_path(run.out)),
        "plot": str(plot) if wrote_plot else None,
        "stopped": reason,
        "events_per_s": run.events_per_s(progress) * run.dist.world,
        "seconds": round(progress.seconds, 1),
        "device": str(run.device),
        "processes": run.dist.world,
        "rank": run.dist.rank,
        "train_pieces": len(run.train),
        "val_pieces": len(run.val),
    }


# ---- progress bar -------------------------------------------------------------------------------


def make_bar(progress: Progress, show: bool) -> tqdm | None:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=progress.total_steps, initial=progress.step, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)


def update_bar(bar: tqdm | None, run: Run, progress: Progress, loss: float) -> None:
    if bar is None:
        return
    bar.update(1)
    if progress.step % 5 == 0:
        bar.set_postfix(loss=f"{loss:.3f}", ev_s=f"{run.events_per_s(progress) * run.dist.world:.0f}", epoch=progress.epoch, refresh=False)


def close_bar(bar: tqdm | None) -> None:
    if bar is not None:
        bar.close()
