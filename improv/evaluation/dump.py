"""`improv eval --duet --dump DIR`: every call with each system's answer to it as a MIDI file a
person can play, and an outside tool can read. One file per (call, system, answer):
``NNN-SYSTEM[-K].mid``, the call on track 1 (channel 1) and the answer on track 2 (channel 2),
the answer starting on the bar line after the call's ``span`` beats, at the piece's tempo."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from improv.evaluation.phrases import PhrasePair
from improv.io.files import check_writable, write_atomic
from improv.music.midi import Track, midi_bytes
from improv.music.notes import Note, notes_of, playable

DEFAULT_VELOCITY = 80  # the corpora's notes carry none (0 would be silent)


def _sounding(notes: np.ndarray, shift: float = 0.0) -> list:
    out = []
    for n in playable(notes_of(notes)):
        start = max(n.start + shift, 0.0)
        out.append(Note(n.pitch, start, max(n.duration, 1e-3), n.velocity if n.velocity > 0 else DEFAULT_VELOCITY))
    return out


def pair_midi(pair: PhrasePair, answer: np.ndarray, bpm: float) -> bytes:
    """The call, then ``answer`` from the bar line ``pair.span`` beats after the call's."""
    quarters = float(pair.bar).is_integer() and pair.beat == 1
    meter = (int(pair.bar), 4) if quarters else (max(int(round(pair.bar * 2)), 1), 8)
    tracks = [Track("call", _sounding(pair.call), channel=0), Track("answer", _sounding(answer, pair.span), channel=1)]
    return midi_bytes(tracks, bpm, meter=meter)


def dump_pairs(folder: str | Path, pairs: Sequence[PhrasePair], answers: dict[str, list[list[np.ndarray]]], default_bpm: float) -> int:
    """Write every pair's file (``answers[system][call]``: that system's answers to the call);
    returns how many files were written."""
    folder = Path(folder)
    written = 0
    for i, pair in enumerate(pairs):
        piece = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(pair.piece).stem)[:40]
        for system, per_call in answers.items():
            several = len(per_call[i]) > 1
            for k, answer in enumerate(per_call[i]):
                path = folder / f"{i:03d}-{system}{f'-{k}' if several else ''}-{piece}.mid"
                if written == 0:
                    check_writable(path)
                write_atomic(path, pair_midi(pair, answer, pair.bpm or default_bpm))
                written += 1
    return written
