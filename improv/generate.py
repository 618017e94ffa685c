"""Offline generation: a model's music to a MIDI (or MusicXML) file.

A pure core and a thin file shell:

* ``sample_rows(model, rng, params, length, prime_rows)`` — token rows in, token rows out: prime
  the numpy step model (BOS, then the prompt), then draw one event at a time with temperature /
  top-k / top-p until EOS or ``length`` events. No torch here: the same numpy path as real time.
* ``compose(...)`` — notes in (the prompt), notes out: folds and tokenises the prompt, samples,
  and lays the new events out in beats after the prompt.
* ``midi_io.midi_bytes`` / ``musicxml_bytes`` — the written file; ``generate_file`` reads the
  prompt, loads the checkpoint and writes ``--out``.

Why the seeds failed and what this does instead: they decoded with argmax (one repeated note) and
wrote every note half a beat after the last with one length; here each event's offset, pitch,
duration and velocity are *sampled* from the model's four heads, so rhythm, note lengths, chords
(offset 0 = same onset, voicing kept) and dynamics all come from the model. A seeded
``numpy.random.Generator`` makes the file a function of (checkpoint, prompt, options, seed): the
same seed writes the same bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ImprovError
from .events import Note, canonical_order, fold_pitch
from .inference import StepModel
from .midi_io import Track, midi_bytes
from .sampling import SamplingParams
from .tokenizer import BOS, EOS, N_PITCH, PITCH, TOKEN_DTYPE, round_half_down

# Where prompt notes are folded to: the piano keyboard (A0..C8). Notes outside it are rare in any
# corpus, so the model has barely seen them and a prompt that uses them would prime it with
# untrained embeddings.
DEFAULT_PITCH_RANGE = (21, 108)
BEATS_PER_BAR = 4  # the files are written in 4/4: whole-bar shifts keep the model's metre

MIDI_SUFFIXES = (".mid", ".midi")
MUSICXML_SUFFIXES = (".musicxml", ".xml")


class GenerateError(ImprovError):
    """A bad generate option, prompt or output path."""


# ---- the pure core: rows --------------------------------------------------------------------


def generation_pitch_mask(allow_end: bool = True) -> np.ndarray:
    """Pitch classes the sampler may draw: every note, EOS if ``allow_end``, never BOS (it only
    starts a piece)."""
    mask = np.ones(N_PITCH, dtype=bool)
    mask[BOS] = False
    mask[EOS] = allow_end
    return mask


@dataclass(frozen=True)
class Sampled:
    rows: np.ndarray  # (n, 4) uint8 note events, no BOS/EOS
    ended: bool  # the model chose to end the piece (EOS) before ``length``


def sample_rows(model: StepModel, rng: np.random.Generator, params: SamplingParams, length: int, prime_rows: np.ndarray | None = None, allow_end: bool = True) -> Sampled:
    """Up to ``length`` events after ``prime_rows`` (BOS first; BOS alone when None); exactly
    ``length`` when not ``allow_end``."""
    prime = model.tokenizer.special(BOS)[None] if prime_rows is None else np.asarray(prime_rows)
    state = model.prime(prime)
    mask = generation_pitch_mask(allow_end)
    out = np.zeros((length, 4), dtype=TOKEN_DTYPE)
    for i in range(length):
        row = model.sample_event(state, rng, params, mask)
        if row[PITCH] == EOS:
            return Sampled(out[:i], True)
        out[i] = row
        if i + 1 < length:  # the last event's state is never needed
            state = model.step(state, row)
    return Sampled(out, False)


# ---- notes in, notes out ----------------------------------------------------------------------


def fold_notes(notes: Sequence[Note], pitch_range: tuple[int, int]) -> list[Note]:
    """Every note moved by whole octaves into ``pitch_range`` (which must span an octave)."""
    low, high = pitch_range
    return [Note(fold_pitch(n.pitch, low, high), n.start, n.duration, n.velocity) for n in notes]


def playable(notes: Sequence[Note]) -> list[Note]:
    """Notes a MIDI file can hold unambiguously: a unison inside a chord becomes one note (as
    ``canonical_order`` merges them), and a note still sounding when its pitch is struck again ends
    there. (MIDI has one key per pitch and channel: otherwise the first note-off would silence the
    second note, or a reader would keep a one-tick note.)"""
    ordered = canonical_order(notes)
    out: list[Note] = []
    sounding: dict[int, int] = {}  # pitch -> index in out of its latest note
    for note in ordered:
        i = sounding.get(note.pitch)
        if i is not None and out[i].end > note.start:
            prev = out[i]
            out[i] = Note(prev.pitch, prev.start, note.start - prev.start, prev.velocity)
        sounding[note.pitch] = len(out)
        out.append(note)
    return out


@dataclass(frozen=True)
class Composition:
    prompt: list[Note]  # the prompt as given (empty without one)
    notes: list[Note]  # the generated notes, in beats (after the prompt, or from bar 1; see compose)
    events: int  # generated events
    ended: bool  # stopped at the model's end-of-piece token


def compose(model: StepModel, rng: np.random.Generator, params: SamplingParams, length: int, prompt: Sequence[Note] = (), continue_prompt: bool = True, pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE) -> Composition:
    """Generate ``length`` events, primed with ``prompt``; without a prompt, fewer if the model
    ends the piece.

    Why no end with a prompt: the user asked for a continuation, and a short phrase often looks
    like a whole piece to the model (measured: a Bach model ended 2 of 3 music21 test phrases at
    once), so the end-of-piece token is masked out then.

    With ``continue_prompt`` the new notes start where the prompt's last onset lies (on the grid),
    as a continuation heard with the prompt; otherwise they are moved back by whole bars so the
    first note falls in the first bar, keeping its place in the bar.
    """
    tok = model.tokenizer
    prompt = list(prompt)
    prime_rows = tok.encode(fold_notes(prompt, pitch_range), bos=True, eos=False) if prompt else None
    # The first sampled offset counts from the last event primed: the prompt's last onset.
    start = round_half_down(max(n.start for n in prompt) * tok.steps_per_beat) / tok.steps_per_beat if prompt else 0.0
    sampled = sample_rows(model, rng, params, length, prime_rows, allow_end=not prompt)
    notes = playable(tok.decode(sampled.rows, start=start))
    if notes and not continue_prompt:
        shift = math.floor(notes[0].start / BEATS_PER_BAR) * BEATS_PER_BAR
        notes = [Note(n.pitch, n.start - shift, n.duration, n.velocity) for n in notes]
    return Composition(prompt, notes, len(sampled.rows), sampled.ended)


# ---- files ------------------------------------------------------------------------------------


def output_format(path: str | Path) -> str:
    """"midi" or "musicxml" from the file name; anything else is an error naming it."""
    suffix = Path(path).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return "midi"
    if suffix in MUSICXML_SUFFIXES:
        return "musicxml"
    raise GenerateError(f"--out {path}: the name must end in .mid, .midi, .musicxml or .xml")


def tracks_for(comp: Composition, program: int, include_prompt: bool) -> list[Track]:
    """The prompt (when wanted) and the generated notes on separate tracks and channels."""
    tracks = []
    if include_prompt and comp.prompt:
        tracks.append(Track("prompt", list(comp.prompt), program=program, channel=1))
    tracks.append(Track("improv", list(comp.notes), program=program, channel=0))
    return tracks


def musicxml_bytes(tracks: Sequence[Track], bpm: float) -> bytes:
    """Sheet music through music21 (imported here: it is slow to import and only this needs it).

    Notes that start together with the same length become one chord (voicing kept); music21 ties
    notes across bar lines and splits lengths no single note value can show.
    """
    from music21 import chord, instrument, meter, stream, tempo
    from music21 import note as m21note
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = stream.Score()
    for index, track in enumerate(tracks):
        part = stream.Part()
        part.partName = track.name
        # Fixed ids (music21 makes up random ones), so the same seed writes the same file.
        part.id = f"P{index + 1}"
        instr = instrument.instrumentFromMidiProgram(track.program)
        instr.partId, instr.instrumentId = part.id, f"P{index + 1}-I1"
        part.insert(0, instr)
        part.insert(0, meter.TimeSignature(f"{BEATS_PER_BAR}/4"))
        if index == 0:
            part.insert(0, tempo.MetronomeMark(number=round(bpm, 2)))
        groups: dict[tuple[float, float], list[Note]] = {}
        for n in track.notes:
            groups.setdefault((n.start, n.duration), []).append(n)
        for (start, duration), group in sorted(groups.items()):
            if len(group) == 1:
                element = m21note.Note(group[0].pitch)
            else:
                element = chord.Chord(sorted(n.pitch for n in group))
            element.quarterLength = duration
            element.volume.velocity = max(n.velocity for n in group)
            part.insert(start, element)
        score.insert(0, part)
    xml = GeneralObjectExporter(score).parse()
    return re.sub(rb"[ \t]*<encoding-date>[^<]*</encoding-date>\r?\n?", b"", xml)  # optional; today's date would change the bytes


@dataclass(frozen=True)
class GenerateOptions:
    checkpoint: str
    out: str
    length: int
    params: SamplingParams
    seed: int
    bpm: float | None  # None: the prompt's tempo, else ``default_bpm``
    default_bpm: float
    program: int
    prompt: str | None = None
    include_prompt: bool = False


@dataclass(frozen=True)
class GenerateReport:
    out: str
    format: str
    events: int
    ended: bool
    notes: int
    beats: float
    bpm: float
    seed: int
    prompt_notes: int = 0

    def summary(self) -> str:
        how = "the model ended the piece" if self.ended else "length reached"
        primed = f", primed with {self.prompt_notes} prompt notes" if self.prompt_notes else ""
        return f"wrote {self.out}: {self.events} events ({how}), {self.beats:.1f} beats at {self.bpm:g} bpm, seed {self.seed}{primed}"


def check_options(opts: GenerateOptions) -> None:
    """Every user-settable value, checked before any slow work; one line naming the bad one."""
    p = opts.params
    if not p.temperature > 0 or not math.isfinite(p.temperature):
        raise GenerateError(f"--temperature must be > 0 (got {p.temperature:g})")
    if p.top_k < 0:
        raise GenerateError(f"--top-k must be >= 0 (0 = off; got {p.top_k})")
    if not 0 < p.top_p <= 1:
        raise GenerateError(f"--top-p must be in (0, 1] (1 = off; got {p.top_p:g})")
    if opts.length < 1:
        raise GenerateError(f"--length must be >= 1 (got {opts.length})")
    if opts.bpm is not None and not 10 <= opts.bpm <= 400:
        raise GenerateError(f"--bpm must be between 10 and 400 (got {opts.bpm:g})")
    if not 0 <= opts.program <= 127:
        raise GenerateError(f"--program must be a General MIDI program 0-127 (got {opts.program})")
    if opts.seed < 0:
        raise GenerateError(f"--seed must be >= 0 (got {opts.seed})")
    output_format(opts.out)
    parent = Path(opts.out).parent
    if parent.exists() and not parent.is_dir():
        raise GenerateError(f"cannot write {opts.out}: {parent} is not a folder")
    if Path(opts.out).is_dir():
        raise GenerateError(f"cannot write {opts.out}: it is a folder")


def read_prompt(path: str) -> tuple[list[Note], float]:
    """(notes, tempo in bpm) of a MIDI prompt; unreadable or empty is a one-line error."""
    from .midi_io import read_midi

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GenerateError(f"cannot read prompt {path}: {exc.strerror or exc}") from None
    try:
        content = read_midi(data)
    except ImprovError as exc:
        raise GenerateError(f"prompt {path} is not a readable MIDI file ({exc})") from None
    if not content.notes:
        raise GenerateError(f"prompt {path} holds no notes")
    return list(content.notes), float(content.bpm)


def write_bytes(path: str, data: bytes) -> None:
    """Write the file, creating its folder; any failure is one line."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise GenerateError(f"cannot write {path}: {exc.strerror or exc}") from None


def generate_file(opts: GenerateOptions) -> GenerateReport:
    """The shell of `improv generate`: options checked, prompt read, model loaded, file written."""
    from .checkpoint import load_checkpoint

    check_options(opts)
    fmt = output_format(opts.out)
    prompt: list[Note] = []
    prompt_bpm: float | None = None
    if opts.prompt:
        prompt, prompt_bpm = read_prompt(opts.prompt)
    ckpt = load_checkpoint(opts.checkpoint)
    model = ckpt.step_model()
    rng = np.random.default_rng(opts.seed)
    comp = compose(model, rng, opts.params, opts.length, prompt, continue_prompt=opts.include_prompt)
    bpm = opts.bpm if opts.bpm is not None else prompt_bpm if prompt_bpm is not None else opts.default_bpm
    bpm = min(max(bpm, 10.0), 400.0)  # a prompt's odd tempo must not give an odd file
    tracks = tracks_for(comp, opts.program, opts.include_prompt)
    data = midi_bytes(tracks, bpm) if fmt == "midi" else musicxml_bytes(tracks, bpm)
    write_bytes(opts.out, data)
    beats = max((n.end for n in comp.notes), default=0.0)
    return GenerateReport(opts.out, fmt, comp.events, comp.ended, len(comp.notes), beats, bpm, opts.seed, len(prompt))
