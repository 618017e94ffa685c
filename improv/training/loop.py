"""The epochs of a training run: steps, validation, checkpoints, early stopping, the summary.

``loop(run, progress, carry, ...)`` trains from wherever ``progress`` says (a resumed run picks up
at the batch it stopped at), validates after each epoch (and every ``val_every`` steps), writes
the best and the last checkpoint, and stops at the end of the epochs, at ``max_steps``, on early
stopping, or, saving ``last`` first, on Ctrl-C / SIGTERM (``io.signals``). A loss that stops being
a finite number ends the run with a one-line error and writes nothing: a diverged model is never
saved as if it were trained.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from improv.errors import TrainError
from improv.io.signals import StopRequests
from improv.training.artefacts import last_path, plot_path, save, write_plot
from improv.training.distributed import all_sum
from improv.training.progress import Progress, Run
from improv.training.step import lr_at, train_step

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    from tqdm import tqdm

    from improv.model.network import State


def planned_steps(run: Run, steps_per_epoch: int) -> int:
    total = run.ts.epochs * steps_per_epoch
    return min(total, run.ts.max_steps) if run.ts.max_steps else total


def make_plan(run: Run, epoch: int) -> Any:
    """One epoch's batches: chunks of whole pieces, or with --pairs call/answer pairs (training.pairs)."""
    from improv.training.batches import plan_epoch
    from improv.training.pairs import plan_pairs

    ts = run.ts
    if run.train_pairs is not None:
        return plan_pairs(run.train_pairs, run.augmenter, ts.batch_size, ts.seed, epoch, run.dist.rank, run.dist.world)
    return plan_epoch(run.train, run.augmenter, ts.batch_size, ts.chunk_len, ts.seed, epoch, ts.crop, run.dist.rank, run.dist.world, ts.chunking)


def validation_loss(run: Run) -> tuple[float, list[float]]:
    """The held-out NLL per event (evaluation.nll, as `improv eval` reports it; with --pairs the
    held-out answers' after their calls), summed over ranks: (total, per field)."""
    from improv.evaluation.nll import heldout_nll
    from improv.training.pairs import pairs_nll

    if run.val_pairs is not None:
        sums, count = pairs_nll(run.net, run.val_pairs, run.device, rank=run.dist.rank, world=run.dist.world)
    else:
        sums, count = heldout_nll(run.net, [p.tokens for p in run.val], run.device, rank=run.dist.rank, world=run.dist.world)
    total = all_sum([*sums.tolist(), count], run.dist, run.device)
    fields = [v / max(total[4], 1.0) for v in total[:4]]
    return (float(sum(fields)) if total[4] else float("nan")), fields


def has_validation(run: Run) -> bool:
    return bool(run.val_pairs if run.val_pairs is not None else run.val)


def pairs_line(run: Run) -> str:
    """--pairs: what is trained on, and the starting model's held-out answer NLL (what to beat)."""
    pairs, val = run.train_pairs or [], run.val_pairs or []
    answer_events = sum(int(p.targets_mask().sum()) for p in pairs)
    line = f"call/answer pairs ({'/'.join(map(str, run.ts.pair_bars))} bars a side): {len(pairs)} to train on ({answer_events} answer events, the only targets), {len(val)} held out"
    if val:
        line += f"; the held-out answers' NLL after their calls before training: {validation_loss(run)[0]:.4f}"
    return line


def validate(run: Run, progress: Progress, lr: float) -> tuple[float, bool]:
    """Validation loss, history entry, early-stopping count. Returns (val_loss, improved)."""
    val_loss, fields = validation_loss(run) if has_validation(run) else (float("nan"), [])
    sums = all_sum([progress.loss_sum, progress.loss_count], run.dist, run.device)
    train_loss = sums[0] / sums[1] if sums[1] else float("nan")
    progress.loss_sum, progress.loss_count, progress.steps_since_val = 0.0, 0, 0
    progress.seconds = run.elapsed()
    improved = math.isfinite(val_loss) and val_loss < progress.best_val_loss
    if improved:
        progress.best_val_loss = val_loss
        progress.bad_validations = 0
    elif has_validation(run):  # without validation pieces nothing can improve: early stopping must not count it
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


def loop(run: Run, progress: Progress, carry: State | None, show_progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """The epochs; returns the summary dict (see ``summary``)."""
    ts = run.ts
    plan = make_plan(run, progress.epoch)
    if not progress.total_steps:
        progress.total_steps = planned_steps(run, len(plan))
    pairs = pairs_line(run) if progress.step == 0 and run.train_pairs is not None else ""  # every rank: it validates
    if progress.step == 0 and run.dist.main:
        baseline = f"; unigram baseline {run.unigram:.3f}" if run.val else ""
        log(f"training on {len(run.train)} pieces ({sum(len(p.tokens) for p in run.train)} events), validating on {len(run.val)}; device {run.device}, {run.dist.world} process(es){baseline}")
        if pairs:
            log(pairs)
        if not has_validation(run):
            why = "train.val_fraction is 0" if ts.val_fraction == 0 else "a single piece is never held out"
            log(f"no validation pieces ({why}): the model of every validation step is saved and early stopping is off")
    bar = make_bar(progress, show_progress)
    last_val, last_train = math.nan, math.nan
    stop_reason = "epochs"
    lr = lr_at(progress.step, ts, progress.total_steps)
    with StopRequests() as stop:
        while progress.epoch < ts.epochs:
            if plan is None:
                plan = make_plan(run, progress.epoch)
            while progress.batch < len(plan):
                if ts.max_steps and progress.step >= ts.max_steps:
                    break
                lr = lr_at(progress.step, ts, progress.total_steps)
                for group in run.optimizer.param_groups:
                    group["lr"] = lr
                batch = plan.batch(progress.batch)
                if batch.reset.all():
                    carry = None  # every row starts from zero (--pairs batches may differ in size)
                began = time.perf_counter()
                loss, count, carry = train_step(run.model, run.optimizer, batch, carry, ts, run.device)
                if not math.isfinite(loss):
                    close_bar(bar)
                    raise TrainError(f"training diverged at step {progress.step + 1}: the loss is {loss} (lower train.lr, now {ts.lr:g}); nothing was saved from this step")
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


def stop_requested(stop: StopRequests, run: Run) -> bool:
    """Agreed by every rank (so that all of them save and stop at the same step)."""
    if not run.dist.enabled:
        return stop.requested
    return all_sum([1.0 if stop.requested else 0.0], run.dist, run.device)[0] > 0


def checkpoint_and_check(run: Run, progress: Progress, lr: float, carry: State | None, log: Callable[[str], None], bar: tqdm | None) -> tuple[float, float, bool]:
    """Validate, write best (if better) and last, log a line; True when early stopping says stop."""
    val_loss, improved = validate(run, progress, lr)
    train_loss = progress.history[-1]["train_loss"]
    if improved or not has_validation(run):
        save(run, run.out, progress, val_loss, train_loss, resumable=False)
    save(run, last_path(run.out), progress, val_loss, train_loss, resumable=True, carry=carry)
    if has_validation(run):
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
            label = "validation (held-out answers after their calls)" if run.val_pairs is not None else "validation (whole pieces)"
            wrote_plot = write_plot(plot, progress.history, run.unigram if run.val_pairs is None else math.nan, label)
        except OSError as exc:  # the checkpoints are written: a missing plot is worth a line, not the run
            log(f"warning: cannot write the loss plot {plot}: {exc.strerror or exc}")
        if has_validation(run):
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
        **({"train_pairs": len(run.train_pairs), "val_pairs": len(run.val_pairs or [])} if run.train_pairs is not None else {}),
    }


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
