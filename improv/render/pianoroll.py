"""A piano-roll picture of a MIDI file, as PNG bytes (matplotlib, no display needed).

An improv session (the tracks ``performer`` and ``improv`` that ``serve --record`` and the demo
write) is drawn in two colours, each call and each answer shaded, with the exchange's number, key
and tempo written above it (read from the file's markers: "call N: KEY, BPM bpm" and "answer N
(voice)"). Any other file gets a colour per track (per channel in a type-0 file). Time runs in
seconds (through the file's tempo changes), pitch upwards, each C named.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from improv.errors import ImprovError, MIDIConversionError
from improv.io.files import check_writable, write_atomic
from improv.music.midi import MidiContent, Part, read_midi_file
from improv.render.labels import place

SESSION_COLOURS = {"performer": "#2166ac", "improv": "#e08214"}
OTHER_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4", "#b2182b"]
CALL = re.compile(r"^call (\d+): (.*), ([\d.]+) bpm$")
ANSWER = re.compile(r"^answer (\d+)(?: \((.*)\))?$")
LABEL_STRIP = 0.13  # the top of the picture holds the labels: two rows for calls, one for answers
CALL_ROWS = (0.972, 0.900)  # axes heights of the calls' rows (the second for crowded calls)
ANSWER_ROW = 0.936
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


@dataclass
class Exchange:
    """One call and its answer as the file's markers tell them (times in seconds)."""

    number: int
    call_at: float
    key: str
    bpm: float
    answer_at: float | None = None
    voice: str = ""


def seconds_of(tempi: list[tuple[float, float]], default_bpm: float = 120.0):
    """A function beats -> seconds through the tempo changes (beat, bpm); 120 bpm before the first."""
    changes = sorted((b, bpm) for b, bpm in tempi if bpm > 0)
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0.0, changes[0][1] if changes and changes[0][0] <= 0 else default_bpm))
    beats = np.array([b for b, _ in changes])
    spb = np.array([60.0 / bpm for _, bpm in changes])
    at = np.concatenate([[0.0], np.cumsum(np.diff(beats) * spb[:-1])])

    def convert(x):
        x = np.asarray(x, dtype=np.float64)
        i = np.clip(np.searchsorted(beats, x, side="right") - 1, 0, len(beats) - 1)
        return at[i] + (x - beats[i]) * spb[i]

    return convert


def exchanges(markers: list[tuple[float, str]], to_seconds) -> list[Exchange]:
    """The session's exchanges from its markers (others are ignored)."""
    found: dict[int, Exchange] = {}
    for beat, text in markers:
        t = float(to_seconds(beat))
        if m := CALL.match(text):
            found[int(m[1])] = Exchange(int(m[1]), t, m[2], float(m[3]))
        elif (m := ANSWER.match(text)) and int(m[1]) in found:
            found[int(m[1])].answer_at, found[int(m[1])].voice = t, m[2] or ""
    return [found[n] for n in sorted(found)]


def is_session(parts: list[Part]) -> bool:
    return {p.name for p in parts} >= {"performer", "improv"}


def pitch_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll_png(content: MidiContent, title: str, dpi: int = 100) -> bytes:
    """The picture of ``content`` (see the module docstring) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: pictures are files
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter

    to_s = seconds_of(content.tempi, content.bpm)
    session = is_session(content.parts)
    parts = sorted(content.parts, key=lambda p: p.name != "performer") if session else content.parts
    ends = [float(to_s(n.start + n.duration)) for p in parts for n in p.notes]
    length = max(ends, default=1.0)
    pitches = [n.pitch for p in parts for n in p.notes] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    # The notes fill the lower part of the axes; the labels (exchanges, markers) the strip above.
    top = low - 0.5 + (high - low + 1) / (1 - LABEL_STRIP) if session or content.markers else high + 0.5
    width = float(np.clip(4 + length * 0.17, 8, 22))
    px_per_s = (width - 1.5) / (length * 1.01 + 0.2) * dpi  # about: the axes leave ~1.5 inches of margin
    fig, ax = plt.subplots(figsize=(width, 5.2), dpi=dpi)
    try:
        for pitch in range(low, high + 1):  # the black keys' rows, lightly shaded
            if pitch % 12 in (1, 3, 6, 8, 10):
                ax.axhspan(pitch - 0.5, pitch + 0.5, color="#f0f0f0", lw=0, zorder=0)
            if pitch % 12 == 0:
                ax.axhline(pitch - 0.5, color="#d0d0d0", lw=0.6, zorder=0)
        if session:
            _draw_exchanges(ax, exchanges(content.markers, to_s), parts, to_s, length, px_per_s / dpi)
        else:
            for beat, text in content.markers:
                x = float(to_s(beat))
                ax.axvline(x, color="#999999", lw=0.8, ls="--", zorder=1)
                ax.text(x, 0.97, f" {text}", fontsize=7, va="top", color="#555555", transform=ax.get_xaxis_transform())
        for i, part in enumerate(parts):
            colour = SESSION_COLOURS.get(part.name) if session else OTHER_COLOURS[i % len(OTHER_COLOURS)]
            starts = to_s([n.start for n in part.notes])
            stops = to_s([n.start + n.duration for n in part.notes])
            # Every note at least a pixel and a half wide, however long the session.
            boxes = [Rectangle((s, n.pitch - 0.4), max(e - s, 1.5 / px_per_s), 0.8) for n, s, e in zip(part.notes, starts, stops)]
            rgb = matplotlib.colors.to_rgb(colour)
            faces = [(*rgb, 0.45 + 0.55 * n.velocity / 127) for n in part.notes]  # louder = stronger
            # A thin white edge keeps a repeated note two notes, not one long bar (where notes are
            # wide enough to keep their colour inside it).
            edge = 0.5 if len(part.notes) and np.median(stops - starts) * px_per_s >= 6 else 0.0
            ax.add_collection(PatchCollection(boxes, facecolors=faces, edgecolors="white", linewidths=edge, zorder=3))
            ax.plot([], [], "s", color=colour, ms=8, label=f"{part.name} ({len(part.notes)} notes)")
        ax.set_xlim(0, length * 1.01 + 0.2)
        ax.set_ylim(low - 0.5, top)
        ax.set_yticks([p for p in range(low, high + 1) if p % 12 == 0] or [low])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: pitch_name(int(round(v)))))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v) // 60}:{int(v) % 60:02d}"))
        ax.set_xlabel("time (min:s)")
        ax.set_ylabel("pitch")
        ax.set_title(title, loc="left", fontsize=11)
        if not any(p.notes for p in parts):
            ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", color="#888888")
        elif parts:
            # Below the time axis: the title keeps the top line, however many parts there are.
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(len(parts), 6), frameon=False, fontsize=9, handletextpad=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=dpi)
        return out.getvalue()
    finally:
        plt.close(fig)


def _draw_exchanges(ax, found: list[Exchange], parts: list[Part], to_s, length: float, inches_per_s: float) -> None:
    """Shade each call (performer's colour) and answer (improv's), and label them above the notes:
    each label as long as its room allows (``render.labels``), down to the exchange's number."""
    improv = next((p for p in parts if p.name == "improv"), None)
    answer_ends = sorted(float(to_s(n.start + n.duration)) for n in improv.notes) if improv else []
    above = ax.get_xaxis_transform()  # x in seconds, y in the axes' height
    right = length * inches_per_s
    calls = place([(ex.call_at * inches_per_s, call_forms(ex)) for ex in found], len(CALL_ROWS), 8, right)
    answered = [ex for ex in found if ex.answer_at is not None]
    answers = place([(ex.answer_at * inches_per_s, answer_forms(ex)) for ex in answered], 1, 7, right)  # type: ignore[operator]
    answer_labels = {ex.number: p for ex, p in zip(answered, answers)}
    for i, (ex, label) in enumerate(zip(found, calls)):
        later = found[i + 1].call_at if i + 1 < len(found) else length
        call_end = ex.answer_at if ex.answer_at is not None else later
        ax.axvspan(ex.call_at, call_end, color=SESSION_COLOURS["performer"], alpha=0.06, lw=0, zorder=1)
        if label.text:
            ax.text(ex.call_at, CALL_ROWS[label.row], label.text, fontsize=8, color=SESSION_COLOURS["performer"], va="center", zorder=4, transform=above)
        if ex.answer_at is None:
            continue
        # The answer lasts until its last note ends, or the next call cuts it (a barge-in).
        mine = [e for e in answer_ends if ex.answer_at < e <= later + 1e-6]
        answer_end = min(max(mine, default=ex.answer_at), later)
        ax.axvspan(ex.answer_at, answer_end, color=SESSION_COLOURS["improv"], alpha=0.09, lw=0, zorder=1)
        ax.axvline(ex.answer_at, color=SESSION_COLOURS["improv"], lw=0.8, ls=":", zorder=2)
        text = answer_labels[ex.number].text
        if text:
            ax.text(ex.answer_at, ANSWER_ROW, text, fontsize=7, color=SESSION_COLOURS["improv"], va="center", zorder=4, transform=above)


def call_forms(ex: Exchange) -> list[str]:
    """A call's label, longest first; the leading space the text is drawn with counts."""
    return [f" {ex.number}: {ex.key}, {ex.bpm:g} bpm", f" {ex.number}: {ex.key}", f" {ex.number}"]


def answer_forms(ex: Exchange) -> list[str]:
    voiced = [f" answer ({ex.voice})"] if ex.voice else []
    return [*voiced, " answer", " a"]


def plot_file(midi_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> tuple[Path, MidiContent]:
    """``improv plot``: the picture of a MIDI file (``out_path``, default NAME.png beside it),
    written atomically; (its path, what was read)."""
    midi_path = Path(midi_path)
    content = read_named(midi_path)  # first: a folder or a file that is not MIDI fails in one line
    out_path = beside(midi_path, out_path, ".png", "picture")
    check_writable(out_path)
    write_atomic(out_path, piano_roll_png(content, picture_title(midi_path.name, content)))
    return out_path, content


def beside(midi_path: Path, out_path: str | os.PathLike[str] | None, suffix: str, what: str) -> Path:
    """Where a file made from ``midi_path`` goes: ``out_path``, else beside it with ``suffix``;
    never the MIDI file itself."""
    out = Path(out_path) if out_path is not None else midi_path.with_suffix(suffix)
    if out.resolve() == midi_path.resolve():
        raise ImprovError(f"the {what} would overwrite its MIDI file: {out}")
    return out


def read_named(path: Path) -> MidiContent:
    """``read_midi_file``, its one-line error naming the file."""
    try:
        return read_midi_file(path)
    except MIDIConversionError as exc:
        raise MIDIConversionError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None


def picture_title(name: str, content: MidiContent) -> str:
    to_s = seconds_of(content.tempi, content.bpm)
    length = max((float(to_s(n.start + n.duration)) for n in content.notes), default=0.0)
    found = exchanges(content.markers, to_s) if is_session(content.parts) else []
    what = f"{len(found)} exchange{'s' if len(found) != 1 else ''}" if found else f"{len(content.notes)} notes"
    return f"{name} · {int(length) // 60}:{int(length) % 60:02d} · {what}"
