"""How much improv learns a performer during a set: a session played into a real ``Engine`` in
simulated time, call after call, and the measures of ``benchmarks/bench_learn.py``. Pure: a
model, phrases and settings in; notes and numbers out.

* ``play_calls`` — the performer plays each phrase once the answer before has ended (and a breath);
  improv's answers come back as notes, in beats from the answer's first note.
* ``play_held`` — the same, the memory held (learning no more) after the first N calls.
* ``memory_nll`` — negative log-likelihood per event (four fields summed, nats) of a phrase under
  the voice alone and under the voice mixed with the session memory (as an answer samples).
* ``idiom_overlaps`` — MGEval overlap (Yang & Lerch) of the answers' pitch-class (by duration, as
  MGEval weighs them, and by note count) and interval histograms with the performer's phrases:
  1 = the answers sit among the performer's phrases as those sit among themselves.
* ``skyline_phrases`` — a piece's top line cut into phrases a performer plays as calls.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import mido
import numpy as np

from improv.evaluation.answers import call_script, sent_notes
from improv.evaluation.metrics import mgeval_overlap, pitch_class_histogram
from improv.music.notes import Note, note_array, notes_of
from improv.music.tokenizer import BOS, OFFSET, PITCH
from improv.realtime.engine import Engine
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_cursor import MemoryCursor

MAX_TURNS = 200_000


def play_calls(engine: Engine, calls: Sequence[np.ndarray], bpm: float, channel: int, start: float = 0.0, breath_s: float = 1.0, due_times: list[float] | None = None) -> tuple[list[np.ndarray], float]:
    """Each call played (``NOTE_DTYPE``, beats) once the engine has answered the one before and
    fallen silent; (improv's answers as notes in beats from each answer's first note, the time
    reached). ``due_times`` collects the wall time of every ``due`` call (the send path)."""
    answers = []
    now = start
    for call in calls:
        script = [(t + now + breath_s - 1.0, m) for t, m in call_script(call, bpm, channel)]
        sent, now = _until_answered(engine, script, due_times)
        first = sent[0].onset if sent else 0.0
        answers.append(note_array([Note(n.pitch, (n.onset - first) * bpm / 60, (n.end - n.onset) * bpm / 60, n.velocity) for n in sent]))
    return answers, now


def play_held(engine: Engine, calls: Sequence[np.ndarray], learn: int, bpm: float, channel: int) -> list[np.ndarray]:
    """``play_calls``, with the memory held after the first ``learn`` calls: the calls after are
    answered by the memory as those calls left it, and not learned (what "improv after N calls"
    plays, however many answers are asked of it)."""
    answers, now = play_calls(engine, calls[:learn], bpm, channel)
    setattr(engine.memory, "hear", lambda rows, now: None)  # held: what it hears now is dropped
    more, _ = play_calls(engine, calls[learn:], bpm, channel, start=now)
    return answers + more


def _until_answered(engine: Engine, script: list[tuple[float, mido.Message]], due_times: list[float] | None) -> tuple[list[tuple[int, float, float, int]], float]:
    out: list[tuple[float, mido.Message]] = []
    now, i, ended = script[0][0], 0, False
    for _ in range(MAX_TURNS):
        times = [script[i][0]] if i < len(script) else []
        wake = engine.next_wakeup()
        if wake is not None:
            times.append(max(wake, now))
        if not times:
            break
        now = max(now, min(times))
        while i < len(script) and script[i][0] <= now:
            engine.on_message(script[i][1], now)
            i += 1
        started = time.perf_counter()
        out += engine.due(now)
        if due_times is not None:
            due_times.append(time.perf_counter() - started)
        while engine.wants_think(now):
            engine.think(now, 1000)
        out += engine.due(now)
        ended = ended or bool(engine.take_reports())
        if ended and i == len(script) and not engine.sounding and not engine.memory.pending:
            break
    else:
        raise RuntimeError(f"the engine did not settle in {MAX_TURNS} turns")
    return sent_notes(out, engine.settings.channel - 1), now


def memory_nll(model: Any, memory: SessionMemory, context: np.ndarray, rows: np.ndarray, now: float, adapt: float = 1.0) -> tuple[float, float]:
    """(voice alone, voice with the memory at ``adapt``): NLL per event of ``rows`` (notes, no
    BOS/EOS) after BOS and ``context`` (the rows heard before, e.g. the phrase before)."""
    notes = [r for r in rows if int(r[PITCH]) < BOS]
    state = model.step(model.initial_state(), model.tokenizer.special(BOS))
    for row in context:
        state = model.step(state, row)
    lam = memory.share(now, adapt)
    cursor = MemoryCursor(memory, lam, memory.scale(now), [r for r in context if int(r[PITCH]) < BOS][-3:])
    alone = mixed = 0.0
    for row in notes:
        for field, logits in enumerate(model.event_logits(state, row)):
            z = logits.astype(np.float64) - logits.max()
            own = float(np.log(np.exp(z).sum()) - z[int(row[field])])
            alone += own
            mixed += -float(cursor.mix(field, row, logits)[int(row[field])]) if lam > 0 else own
        cursor.push(row)
        state = model.step(state, row)
    n = max(len(notes), 1)
    return alone / n, mixed / n


def session_rows(tokenizer: Any, phrases: Sequence[np.ndarray], gap_beats: float = 2.0) -> list[np.ndarray]:
    """Each phrase's rows as one session has them, played one after another with ``gap_beats``
    of silence between them: its first offset is from the phrase before's last onset (the nearest
    class), as an engine hears a call."""
    out = []
    last_onset = last_end = None
    for phrase in phrases:
        notes = notes_of(note_array(phrase))
        rows = tokenizer.encode(notes)[1:-1].copy()
        first = min(n.start for n in notes)
        if last_onset is not None and len(rows):
            gap = last_end - last_onset + gap_beats
            rows[0, OFFSET] = int(np.argmin(np.abs(tokenizer.time_values - gap)))
        last_onset = max(n.start for n in notes) - first
        last_end = max(n.end for n in notes) - first
        out.append(rows)
    return out


def top_line(notes: np.ndarray, tolerance: float = 1 / 24) -> list[int]:
    """The highest pitch at each onset, in time order."""
    out: list[tuple[float, int]] = []
    for n in sorted(notes_of(note_array(notes)), key=lambda n: (n.start, -n.pitch)):
        if out and n.start - out[-1][0] < tolerance:
            continue
        out.append((n.start, n.pitch))
    return [p for _, p in out]


def interval_histogram(notes: np.ndarray) -> np.ndarray:
    """Melodic intervals of the top line, -12..12 semitones (wider ones at the ends); sums to 1."""
    line = top_line(notes)
    steps = np.clip(np.diff(line), -12, 12) if len(line) > 1 else np.zeros(0, dtype=int)
    hist = np.bincount(steps.astype(int) + 12, minlength=25).astype(float)
    return hist / hist.sum() if hist.sum() > 0 else hist


def pitch_class_counts(notes: np.ndarray) -> np.ndarray:
    """12 pitch classes, each note counted once; sums to 1. MGEval's own histogram weights each
    note by its length (``metrics.pitch_class_histogram``): a lick's closing half note is a third of
    its histogram, and the measure then asks mostly where each phrase's long note falls."""
    hist = np.bincount(np.asarray(notes["pitch"], dtype=int) % 12, minlength=12).astype(float)
    return hist / hist.sum() if hist.sum() > 0 else hist


FEATURES = {
    "pitch_class": lambda a: pitch_class_histogram(notes_of(note_array(a))),  # MGEval's: by duration
    "pitch_class_count": pitch_class_counts,
    "interval": interval_histogram,
}


def idiom_overlaps(answers: Sequence[np.ndarray], performer: Sequence[np.ndarray]) -> dict[str, float]:
    """MGEval overlap of the answers with the performer's phrases, per feature (``FEATURES``)."""
    answers = [a for a in answers if len(a) > 1]
    out = {}
    for name, feature in FEATURES.items():
        out[name] = mgeval_overlap(np.array([feature(a) for a in answers]), np.array([feature(p) for p in performer])) if answers else float("nan")
    return out


def skyline_phrases(notes: Sequence[Note], beats: float = 8.0, min_notes: int = 5, max_rest: float = 0.75) -> list[np.ndarray]:
    """A piece's top line (highest note per onset, each cut at the next onset) in phrases of
    ``beats`` beats: the ones with ``min_notes`` notes or more and no rest over ``max_rest`` beats
    (a call would end there). Starts in beats from the phrase's first note."""
    grid = 12  # the tokenizer's steps per beat: two onsets on one step would be one chord
    ordered = sorted((Note(n.pitch, round(n.start * grid) / grid, n.duration, n.velocity) for n in notes), key=lambda n: (n.start, -n.pitch))
    line: list[Note] = []
    for n in ordered:
        if line and n.start - line[-1].start < 1 / 24:
            continue
        if line and line[-1].end > n.start:
            last = line[-1]
            line[-1] = Note(last.pitch, last.start, max(n.start - last.start, 1 / 24), last.velocity)
        line.append(n)
    phrases = []
    if not line:
        return phrases
    at, end = line[0].start, line[-1].end
    while at < end:
        part = [n for n in line if at <= n.start < at + beats]
        if len(part) >= min_notes:
            gaps = [b.start - a.end for a, b in zip(part, part[1:])]
            if max(gaps, default=0.0) <= max_rest:
                first = part[0].start
                phrases.append(note_array([Note(n.pitch, n.start - first, min(n.duration, 4.0), max(n.velocity, 1)) for n in part]))
        at += beats
    return phrases
