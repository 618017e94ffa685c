"""`improv generate`'s shell: options checked, the prompt read, the model loaded (torch-free), the
music composed (``compose``) and written as MIDI or MusicXML. The same seed writes the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from improv.errors import ImprovError
from improv.generation.compose import Composition, compose
from improv.model.sampling import SamplingParams
from improv.music.midi import Track, midi_bytes
from improv.music.musicxml import musicxml_bytes
from improv.music.notes import Note

MIDI_SUFFIXES = (".mid", ".midi")


MUSICXML_SUFFIXES = (".musicxml", ".xml")


class GenerateError(ImprovError):
    """A bad generate option, prompt or output path."""


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
    max_file_mb: float = 32.0
    min_length: int = -1  # events before the model may end the piece; -1 = the whole length  # a prompt is read under the corpus's rules (corpus.max_file_mb)


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
    if opts.min_length < -1:
        raise GenerateError(f"--min-length must be >= 0, or -1 for the whole --length (got {opts.min_length})")
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


def read_prompt(path: str, max_file_mb: float = 32.0) -> tuple[list[Note], float]:
    """(notes, tempo in bpm) of a MIDI prompt, read as the corpus reads a file (one reader, one
    set of rules: a regular file within corpus.max_file_mb, ``corpus.reader.read_file``); whatever
    the corpus would skip is a one-line error naming the reason."""
    from improv.corpus.reader import read_file
    from improv.errors import one_line
    from improv.io.files import FileProblem, read_regular_file
    from improv.music.notes import notes_of

    try:
        data = read_regular_file(path, int(max_file_mb * 1e6))
    except FileProblem as exc:
        raise GenerateError(f"cannot read prompt {path}: {exc}") from None
    try:
        result = read_file(path, "midi", data)
    except RecursionError:
        raise GenerateError(f"prompt {path} is not a readable MIDI file (nested too deeply to parse)") from None
    except Exception as exc:  # noqa: BLE001 - as in the corpus's workers: a bad file is a reason, never a traceback
        raise GenerateError(f"prompt {path} is not a readable MIDI file (reader failed: {one_line(exc)})") from None
    if result.skip is not None:
        if result.skip.startswith("no pitched notes"):
            raise GenerateError(f"prompt {path} holds no notes ({result.skip})")
        raise GenerateError(f"prompt {path} is not a readable MIDI file ({result.skip})")
    work = result.works[0]
    return notes_of(work.notes), float(work.bpm if work.bpm is not None else 120.0)


def write_bytes(path: str, data: bytes) -> None:
    """Write the file, creating its folder, atomically (``io.files.write_atomic``: a symlink at
    ``--out`` is replaced, never written through); any failure is one line."""
    from improv.io.files import write_atomic

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as exc:
        raise GenerateError(f"cannot write {path}: {exc.strerror or exc}") from None


def generate_file(opts: GenerateOptions) -> GenerateReport:
    """The shell of `improv generate`: options checked, prompt read, model loaded, file written."""
    from improv.model.voices import load_player

    check_options(opts)
    fmt = output_format(opts.out)
    prompt: list[Note] = []
    prompt_bpm: float | None = None
    if opts.prompt:
        prompt, prompt_bpm = read_prompt(opts.prompt, opts.max_file_mb)
    model = load_player(opts.checkpoint).step_model()
    rng = np.random.default_rng(opts.seed)
    comp = compose(model, rng, opts.params, opts.length, prompt, continue_prompt=opts.include_prompt, min_length=opts.min_length)
    bpm = opts.bpm if opts.bpm is not None else prompt_bpm if prompt_bpm is not None else opts.default_bpm
    bpm = min(max(bpm, 10.0), 400.0)  # a prompt's odd tempo must not give an odd file
    tracks = tracks_for(comp, opts.program, opts.include_prompt)
    data = midi_bytes(tracks, bpm) if fmt == "midi" else musicxml_bytes(tracks, bpm)
    write_bytes(opts.out, data)
    beats = max((n.end for n in comp.notes), default=0.0)
    return GenerateReport(opts.out, fmt, comp.events, comp.ended, len(comp.notes), beats, bpm, opts.seed, len(prompt))
