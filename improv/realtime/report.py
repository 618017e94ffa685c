"""What a session reports: one ``Exchange`` per call and its answer (the status line, the timing
figures of the demo and the benchmark), and the ``Recorder`` of everything played (performer and
improv), for ``serve --record`` and the demo's file.

The engine fills both as it runs; neither reads a clock nor touches a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from improv.music.notes import Note
from improv.music.midi import Track


@dataclass
class Exchange:
    """One call and its answer, for the status line.

    Two different delays lie between the end of the call and the first answer note: the musical
    wait (decision -> the grid point the first note is scheduled on, chosen) and the machine's
    overhead (that note sent late, plus any model work done at the decision because the
    speculation was not ready: a wait may hide it, so it is counted apart).
    """

    number: int
    end_reason: str  # silence | control | max length
    call_notes: int
    call_beats: float
    bpm: float
    tempo_source: str  # config | clock | estimate
    key: str  # "" when keep_key is off
    decided_at: float  # when the call ended: last release + threshold, or the controller's time
    threshold_s: float  # the silence threshold, for the status line (0 for other ends)
    grid: str = ""  # what the first note was aligned to ("beat", ...); "" = at once
    sync_units: int = 0  # model work done after the decision (0 when the speculation was ready)
    sync_s: float = 0.0  # how long that work took on the loop's clock (the engine cannot tell)
    sync_done_at: float | None = None  # when it was done, on the loop's clock
    first_note_at: float | None = None  # scheduled time of the first answer note
    first_sent_at: float | None = None  # when the loop actually sent it
    response_notes: int = 0
    ended: str = ""  # finished | barge-in | panic | error | shutdown

    @property
    def wait_s(self) -> float | None:
        """The musical wait: decision -> the first note's scheduled time (the grid point)."""
        return None if self.first_note_at is None else self.first_note_at - self.decided_at

    @property
    def send_late_s(self) -> float | None:
        """Scheduled first note -> actually sent (None until the loop sent it)."""
        if self.first_note_at is None or self.first_sent_at is None:
            return None
        return self.first_sent_at - self.first_note_at

    @property
    def overhead_s(self) -> float | None:
        """The machine's part: the first note's lateness and the model work at the decision, as
        time intervals, counted once where they overlap (work that made the note late)."""
        if self.first_note_at is None:
            return None
        sent = self.first_sent_at if self.first_sent_at is not None else self.first_note_at
        late = max(sent - self.first_note_at, 0.0)
        if self.sync_s <= 0 or self.sync_done_at is None:
            return late
        work_start = self.sync_done_at - self.sync_s
        overlap = max(0.0, min(self.sync_done_at, sent) - max(work_start, self.first_note_at))
        return late + self.sync_s - overlap

    @property
    def latency_s(self) -> float | None:
        """End-of-call decision -> first note leaving (beyond the threshold): wait + lateness."""
        first = self.first_sent_at if self.first_sent_at is not None else self.first_note_at
        return None if first is None else first - self.decided_at

    def status_line(self) -> str:
        key = f" · {self.key}" if self.key else ""
        return (
            f"#{self.number} call {self.call_notes} notes / {self.call_beats:.1f} beats"
            f" · {self.bpm:.0f} bpm ({self.tempo_source}){key} · {self._answer_words()}"
            f" · answer {self.response_notes} notes ({self.ended})"
        )

    def _answer_words(self) -> str:
        wait = self.wait_s
        if wait is None:
            return "no note"
        after = f"the {self.threshold_s * 1000:.0f} ms silence" if self.end_reason == "silence" else f"the {self.end_reason}"
        if self.grid:
            words = f"first note on the {self.grid}, {wait * 1000:.0f} ms after {after}"
        else:
            words = f"first note at once after {after}"
        late = self.send_late_s
        if self.sync_units:
            spent = f": {self.sync_s * 1000:.2f} ms" if self.sync_s > 0 else ""
            sent = f"sent {late * 1000:.2f} ms late, " if late is not None else ""
            return f"{words}, {sent}{self.sync_units} model units at the decision{spent}"
        return f"{words}, sent {late * 1000:.2f} ms late" if late is not None else words


class Recorder:
    """Collects the session's notes, performer and improv, for ``serve --record`` and the demo."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self._open: dict[tuple[str, int, int], tuple[float, int]] = {}
        self.notes: dict[str, list[tuple[int, float, float, int, int]]] = {"performer": [], "improv": []}

    def note_on(self, who: str, channel: int, pitch: int, velocity: int, t: float) -> None:
        if self.t0 is None:
            self.t0 = t
        self.note_off(who, channel, pitch, t)  # a re-struck key ends the previous note
        self._open[(who, channel, pitch)] = (t, velocity)

    def note_off(self, who: str, channel: int, pitch: int, t: float) -> None:
        started = self._open.pop((who, channel, pitch), None)
        if started is not None:
            self.notes[who].append((pitch, started[0], t, started[1], channel))

    def close(self, t: float) -> None:
        for who, channel, pitch in list(self._open):
            self.note_off(who, channel, pitch, t)

    def tracks(self, bpm: float) -> list[Track]:
        """One ``midi_io.Track`` per party, seconds from the first note turned into beats at ``bpm``."""
        t0 = self.t0 or 0.0
        out = []
        for who in ("performer", "improv"):
            notes = sorted(self.notes[who], key=lambda n: (n[1], n[0]))
            channel = notes[0][4] if notes else 0
            out.append(
                Track(
                    who,
                    [Note(p, (on - t0) * bpm / 60, max(off - on, 0.001) * bpm / 60, v) for p, on, off, v, _ in notes],
                    channel=channel,
                )
            )
        return out
