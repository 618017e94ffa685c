"""`improv train`: set up a run (settings, data, split, model, optimiser) and hand it to the loop.

One optimiser step trains on ``batch_size`` rows of ``chunk_len`` events with a loss on every
position (truncated BPTT; ``training.batches`` says how chunks are made and why). Validation is
the NLL per event of whole held-out pieces from a zero state, BOS to EOS, the way `improv eval`
measures it (``evaluation.nll``). AdamW, linear warm-up then cosine decay, gradient clipping,
early stopping.

Files: ``--out`` (the best model, no optimiser state: small, what you ship), ``NAME.npz`` beside
it (its torch-free weights: what plays), and ``NAME.last.pt`` (the latest weights plus everything
``--resume`` needs: optimiser, step, position in the epoch, recurrent state carried between
chunks, every random state). All are written atomically. Ctrl-C or SIGTERM asks the loop to stop
after the current step; it then writes ``last`` and exits.

``from_model`` (``--from``) fine-tunes: the weights, model settings and tokenizer of another model
(a shipped voice, ``base`` above all) are the start, instead of random weights; the data, the split
and the training settings are this run's.

Distributed: under ``torchrun`` (``WORLD_SIZE`` set) each process trains its own rows of every
batch with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 alone writes and prints.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from improv.errors import TrainError
from improv.io.files import check_writable
from improv.settings.load import section_from_dict
from improv.settings.sections import (
    CorpusSettings,
    ModelSettings,
    TokenizerSettings,
    TrainSettings,
)
from improv.training.artefacts import last_path
from improv.training.distributed import (
    Dist,
    barrier,
    init_distributed,
    pick_device,
    set_threads,
)
from improv.training.loop import loop
from improv.training.progress import Progress, Run
from improv.training.state import seed_everything, set_random_states, state_to_device
from improv.training.step import make_optimizer

if TYPE_CHECKING:  # torch is imported inside the functions that use it: `improv --help` stays fast
    from improv.corpus.load import Piece
    from improv.model.checkpoint import Checkpoint
    from improv.model.network import State
    from improv.music.tokenizer import Tokenizer


def load_pieces(sources: Sequence[str], tokenizer: Tokenizer, corpus: CorpusSettings, dist: Dist, show_progress: bool) -> list[Piece]:
    """The corpus's pieces; rank 0 parses first so the others read its cache."""
    from improv.corpus.load import load_corpus, skipped_lines

    if not sources:
        raise TrainError("no training data given (use --data PATH or train.data in the config)")
    pieces = None
    if dist.main:
        pieces, report = load_corpus(list(sources), tokenizer, corpus, progress=show_progress)
    barrier(dist)
    if not dist.main:
        pieces, report = load_corpus(list(sources), tokenizer, corpus, progress=False)
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
    from improv.training.batches import split_pieces

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


def _resume_state(ts: TrainSettings, overrides: dict[str, Any]) -> tuple[Checkpoint, TrainSettings, TrainSettings]:
    """The last checkpoint, its own settings, and the run's settings (its own, with only what the
    command line may change: epochs, max_steps, device)."""
    from improv.model.checkpoint import load_checkpoint

    path = last_path(ts.out)
    if not path.exists():
        raise TrainError(f"nothing to resume: {path} does not exist (train without --resume first)")
    ckpt = load_checkpoint(path)
    if ckpt.resume is None:
        raise TrainError(f"{path} holds no resume state")
    try:
        recorded = section_from_dict(TrainSettings, dict(ckpt.train["settings"]), "train")
    except (KeyError, TypeError) as exc:
        raise TrainError(f"{path} is damaged: its training settings are missing ({exc})") from None
    for key in ("optimizer", "progress", "world", "ranks"):
        if key not in ckpt.resume:
            raise TrainError(f"{path} is damaged: its resume state lacks {key!r} (train again without --resume)")
    kept = {k: v for k, v in overrides.items() if v is not None and k in ("epochs", "max_steps", "device")}
    return ckpt, recorded, replace(recorded, out=ts.out, **kept)


def prepare(
    ts: TrainSettings,
    model_settings: ModelSettings,
    tokenizer_settings: TokenizerSettings,
    corpus: CorpusSettings,
    *,
    resume: bool,
    from_model: str | None,
    overrides: dict[str, Any],
    pieces: list[Piece] | None,
    dist: Dist,
    show_progress: bool,
) -> tuple[Run, Progress, State | None]:
    """Build the run: settings (the checkpoint's on --resume), data split, model, optimiser."""
    import torch

    from improv.model.network import ImprovNet
    from improv.music.texture import texture
    from improv.music.tokenizer import Tokenizer
    from improv.training.batches import Augmenter

    ts = replace(ts, **{k: v for k, v in overrides.items() if v is not None})
    ckpt = start = None
    origin = None
    if resume:
        ckpt, recorded, ts = _resume_state(ts, overrides)
        model_settings, tokenizer_settings = ckpt.model_settings, ckpt.tokenizer.settings
        origin = ckpt.train.get("from")
    elif from_model:
        start = _start_from(from_model)
        ts = replace(ts, lr=ts.finetune_lr)  # recorded as the run's lr: what it trained with
        model_settings, tokenizer_settings = start.model_settings, start.tokenizer.settings
        origin = {"name": Path(start.path).stem, "path": str(start.path), "best_val_loss": start.train.get("best_val_loss")}
    if dist.main:
        check_writable(ts.out)  # before the data and the epochs: not a traceback after them
    device = pick_device(ts.device, dist)
    set_threads(ts.threads, dist)
    tokenizer = Tokenizer(tokenizer_settings)
    if pieces is None:
        pieces = load_pieces(ts.data, tokenizer, corpus, dist, show_progress)
    train, val = choose_split(pieces, ts, ckpt.train if ckpt else None)
    if start is not None:
        train, val = keep_held_out(train, val, start.train.get("heldout", []))
    train_pairs = val_pairs = None
    if ts.pairs:
        train_pairs, val_pairs = make_pairs(train, val, tokenizer, ts)
    events = sum(len(p.tokens) for p in pieces)
    if dist.main and ckpt is None and start is None and events < SMALL_CORPUS_EVENTS:
        # measured on 92 piano pieces (README): from scratch they stay random-sounding
        print(f"improv train: {events:,} events is a small corpus: fine-tuned from a voice it learns far better (--from base)", file=sys.stderr)
    seed_everything(ts.seed)  # the same initial weights on every rank
    net = ImprovNet(model_settings, tokenizer.sizes).to(device)
    if ckpt is not None or start is not None:
        net.load_state_dict((ckpt or start).weights)  # type: ignore[union-attr]
    model = net
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(net, ts)
    augmenter = Augmenter(tokenizer, ts.transpose, ts.tempo_stretch, transpose_by=ts.transpose_by)
    unigram = unigram_baseline(train, val, tokenizer.sizes)
    run = Run(model_settings, ts, dist, device, tokenizer, train, val, net, model, optimizer, augmenter, unigram, Path(ts.out), texture([p.tokens for p in train]), origin, train_pairs=train_pairs, val_pairs=val_pairs)
    progress = Progress()
    carry = None
    if ckpt is not None:
        carry = restore(run, ckpt, progress)
        if (ts.epochs, ts.max_steps) != (recorded.epochs, recorded.max_steps):
            progress.total_steps = 0  # a longer (or shorter) run: the schedule follows the new length
    else:
        torch.manual_seed(ts.seed * 1009 + 1 + dist.rank)  # each rank its own dropout masks
    return run, progress, carry


def keep_held_out(train: list[Piece], val: list[Piece], held: Sequence[str]) -> tuple[list[Piece], list[Piece]]:
    """A piece the starting model held out stays held out: its evaluation (`eval --duet` draws
    its calls from them) must never score music the fine-tuned model trained on."""
    held_names = set(held)
    moved = [p for p in train if p.name in held_names]
    if not moved:
        return train, val
    return [p for p in train if p.name not in held_names], sorted(val + moved, key=lambda p: p.name)


def make_pairs(train: list[Piece], val: list[Piece], tokenizer: Tokenizer, ts: TrainSettings) -> tuple[list[Any], list[Any]]:
    """--pairs: the training pieces' (call, answer) pairs, and an even spread of the held-out ones'."""
    from improv.training.pairs import MAX_VAL_PAIRS, pair_sequences, spread_pairs

    train_pairs = pair_sequences(train, tokenizer, ts.pair_bars)
    if not train_pairs:
        bars = "/".join(map(str, ts.pair_bars))
        raise TrainError(f"--pairs: no {bars}-bar call/answer pair (4 onsets a side or more) in the {len(train)} training pieces")
    return train_pairs, spread_pairs(pair_sequences(val, tokenizer, ts.pair_bars), MAX_VAL_PAIRS)


SMALL_CORPUS_EVENTS = 200_000  # below this, training from random weights is advised against


def _start_from(name_or_path: str) -> Checkpoint:
    """The model a fine-tuning run starts from: a shipped voice's name or a checkpoint file."""
    from improv.model.checkpoint import load_checkpoint
    from improv.model.voices import model_location, training_checkpoint

    path = model_location(None, None, name_or_path)
    ckpt = load_checkpoint(training_checkpoint(path))
    ckpt.path = str(path)
    return ckpt


def unigram_baseline(train: Sequence[Piece], val: Sequence[Piece], sizes: Sequence[int]) -> float:
    """NLL per event on the validation pieces of ``baselines.UnigramModel`` fitted on the training
    pieces: the same baseline (and number) as `improv eval`'s ``unigram_nll``; NaN without any."""
    from improv.evaluation.baselines import UnigramModel

    if not val:
        return float("nan")
    total, count = UnigramModel(sizes).fit([p.tokens for p in train]).nll([p.tokens for p in val])
    return float(total.sum() / max(count, 1))


def restore(run: Run, ckpt: Checkpoint, progress: Progress) -> State | None:
    """Optimiser, counters, random states and carried state from the last checkpoint."""
    state = ckpt.resume
    assert state is not None
    try:
        run.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainError(f"{ckpt.path} is damaged: its optimiser state does not fit this model ({exc})") from None
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


def train(
    ts: TrainSettings,
    model_settings: ModelSettings,
    tokenizer_settings: TokenizerSettings,
    corpus: CorpusSettings,
    *,
    resume: bool = False,
    from_model: str | None = None,
    overrides: dict[str, Any] | None = None,
    pieces: list[Piece] | None = None,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or fine-tune ``from_model``) and return the summary. ``overrides``: values
    named on the command line (``epochs``, ``max_steps``, ``seed``, ``device``, ``out``,
    ``data``); ``pieces``: skip the corpus loader (tests). Raises ``KeyboardInterrupt`` after
    saving ``last`` when asked to stop."""
    overrides = dict(overrides or {})
    dist = init_distributed(overrides.get("device") or ts.device)
    try:
        if show_progress is None:
            show_progress = sys.stderr.isatty()
        show_progress = show_progress and dist.main
        log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        run, progress, carry = prepare(
            ts, model_settings, tokenizer_settings, corpus,
            resume=resume, from_model=from_model, overrides=overrides, pieces=pieces, dist=dist, show_progress=show_progress,
        )  # fmt: skip
        return loop(run, progress, carry, show_progress, log if dist.main else (lambda line: None))
    finally:
        if dist.enabled:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
