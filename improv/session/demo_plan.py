"""`improv demo`: a built-in performer plays calls into the real engine. Pure planning here;
``session.demo`` runs it on a clock and writes the file.

The performer plays phrases cut from real music (music21's corpus) at their tempo. It knows the
engine's rules, so it plans the whole session up front: each call ends with all keys up; the
answer begins one silence threshold later, on the next point of the call's beat grid (the
phrase's tempo, its first note on a beat), and lasts as long as the call; the performer waits for
it to finish (plus a short breath) before the next call, except every ``barge_every``-th call,
which it starts halfway through the answer, to show a barge-in. Nothing in the plan reads a
clock: times are seconds from ``start`` on whatever clock runs the session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import mido
import numpy as np

from improv.music.notes import Note
from improv.music.rhythm import next_grid_point

# A note-off goes this long before the written end, so a repeated pitch is struck anew.
_RELEASE_GAP_S = 0.004


@dataclass(frozen=True)
class Phrase:
    source: str  # the work it was cut from
    start_beat: float  # where in the work
    notes: tuple[Note, ...]  # starts from 0 (beats)
    bpm: float
    bpm_source: str = "config"  # "piece": the tempo written in the piece; "config": demo.bpm

    @property
    def beats(self) -> float:
        return max(n.end for n in self.notes)

    @property
    def seconds(self) -> float:
        return self.beats * 60 / self.bpm


@dataclass(frozen=True)
class PlannedCall:
    phrase: Phrase
    start: float  # seconds
    barge_in: bool  # starts while the previous answer is still playing


def cut_phrase(
    notes: Sequence[Note], source: str, bpm: float, beats: float, rng: np.random.Generator, min_notes: int = 6, bar_beats: float = 4.0,
    max_rest_beats: float = math.inf, bpm_source: str = "config",
) -> Phrase | None:
    """A ``beats``-long window of ``notes`` starting on a bar line (every ``bar_beats``), chosen
    at random among windows with at least ``min_notes`` notes; notes are cut at the window's end,
    and the window ends before its first rest of ``max_rest_beats`` or more (all keys up)."""
    if not notes:
        return None
    end = max(n.end for n in notes)
    starts = [bar_beats * b for b in range(int(math.floor(max(end - beats, 0) / bar_beats)) + 1)]
    windows = []
    for s in starts:
        inside = _before_rest([n for n in notes if s <= n.start < s + beats], max_rest_beats)
        if len(inside) >= min_notes:
            windows.append((s, inside))
    if not windows:
        return None
    s, inside = windows[int(rng.integers(len(windows)))]
    cut = tuple(Note(n.pitch, n.start - s, min(n.duration, s + beats - n.start), n.velocity) for n in inside)
    return Phrase(source, s, cut, bpm, bpm_source)


def _before_rest(notes: Sequence[Note], max_rest_beats: float) -> list[Note]:
    """``notes`` up to their first rest of ``max_rest_beats`` or more. Why: a rest as long as the
    engine's silence threshold ends the call there, and the rest of the phrase would be a second
    call: the demo would play more exchanges than it announced, one of them unanswered."""
    ordered = sorted(notes, key=lambda n: n.start)
    released = -math.inf
    for i, n in enumerate(ordered):
        if i and n.start - released >= max_rest_beats:
            return ordered[:i]
        released = max(released, n.end)
    return ordered


def plan_session(
    phrases: Sequence[Phrase], start: float, silence_s: float, barge_every: int, breath_beats: float, grid_beats: float = 0.0,
    lead_beats: float = 0.0, answer_ratio: float = 1.0,
) -> tuple[list[PlannedCall], float]:
    """When each call starts, and when the session is over (the last answer's end plus a breath).
    ``grid_beats`` and ``lead_beats`` are the engine's ``answer_grid_beats`` and
    ``answer_lead_beats`` (0 = the answer starts at once); ``answer_ratio`` how long an answer
    lasts for the call's length (1: as long; an answer ending as a phrase runs a little over)."""
    calls: list[PlannedCall] = []
    t = start
    end = start
    for i, phrase in enumerate(phrases):
        calls.append(PlannedCall(phrase, t, _is_barge(i, barge_every)))
        answer_starts = answer_start(phrase, t, silence_s, grid_beats, lead_beats)
        answer_s = phrase.seconds * answer_ratio
        end = answer_starts + answer_s + breath_beats * 60 / phrase.bpm
        t = answer_starts + 0.5 * answer_s if _is_barge(i + 1, barge_every) else end
    return calls, end


def answer_start(phrase: Phrase, start: float, silence_s: float, grid_beats: float, lead_beats: float = 0.0) -> float:
    """When the engine's answer to ``phrase`` played from ``start`` begins: the last release plus
    the silence, then on to the next point of the call's grid (its first note on a beat)."""
    spb = 60 / phrase.bpm
    decided = start + max(_note_times(n, 0.0, spb)[1] for n in phrase.notes) + silence_s + lead_beats * spb
    if grid_beats <= 0:
        return decided
    first = start + min(n.start for n in phrase.notes) * spb
    return next_grid_point(decided, first, grid_beats * spb)


def _note_times(n: Note, start: float, spb: float) -> tuple[float, float]:
    """When the performer presses and releases ``n`` (released a little early: see _RELEASE_GAP_S)."""
    on = start + n.start * spb
    return on, max(on + 0.01, start + n.end * spb - _RELEASE_GAP_S)


def _is_barge(index: int, barge_every: int) -> bool:
    """Every ``barge_every``-th call (never the first) starts halfway through the answer before it."""
    return barge_every > 0 and index > 0 and index % barge_every == 0


def call_messages(call: PlannedCall, channel: int) -> list[tuple[float, mido.Message]]:
    """The performer's note_on/note_off messages for one call, with their times."""
    spb = 60 / call.phrase.bpm
    out: list[tuple[float, mido.Message]] = []
    for n in call.phrase.notes:
        on, off = _note_times(n, call.start, spb)
        out.append((on, mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity)))
        out.append((off, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)))
    out.sort(key=lambda item: (item[0], item[1].type == "note_on"))  # offs first at equal times
    return out


def summary(exchanges: Sequence, calls: Sequence[PlannedCall], performer_notes: int, improv_notes: int, lateness: dict[str, float], real_time: bool) -> dict:
    """The figures the demo prints (and `--json` returns)."""
    latencies = [ex.latency_s * 1000 for ex in exchanges if ex.latency_s is not None]
    waits = [ex.wait_s * 1000 for ex in exchanges if ex.wait_s is not None]
    overheads = [ex.overhead_s * 1000 for ex in exchanges if ex.overhead_s is not None]
    answered = [ex for ex in exchanges if ex.response_notes > 0]
    result = {
        "calls": len(calls),
        "planned_barge_ins": sum(c.barge_in for c in calls),
        "exchanges": len(exchanges),
        "answered": len(answered),
        "barge_ins": sum(1 for ex in exchanges if ex.ended == "barge-in" and ex.response_notes > 0),
        "not_begun": sum(1 for ex in exchanges if ex.ended == "barge-in" and ex.response_notes == 0),
        "performer_notes": performer_notes,
        "improv_notes": improv_notes,
        "real_time": real_time,
        "first_note_after_threshold_ms_median": float(np.median(latencies)) if latencies else None,
        "first_note_after_threshold_ms_max": float(max(latencies)) if latencies else None,
        # ... of which the musical wait for the beat, and the machine's overhead:
        "answer_wait_ms_median": float(np.median(waits)) if waits else None,
        "response_overhead_ms_median": float(np.median(overheads)) if overheads else None,
        "response_overhead_ms_max": float(max(overheads)) if overheads else None,
        "sources": sorted({c.phrase.source for c in calls}),
        "endings": [ex.ended for ex in exchanges],  # finished | barge-in | shutdown | ...
    }
    if real_time:
        result.update(lateness)
    return result
