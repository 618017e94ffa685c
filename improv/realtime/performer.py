"""What the performer is doing: keys held, notes not yet heard by the model, the sustain pedal.

Pure state, fed with stamped note and pedal events. It answers three questions for the engine:
which notes are complete and may be fed to the model (``ready_group``: a chord is the notes struck
within ``chord_s`` of its first, released), whether the performer has fallen quiet (no key, no
pedal), and which keys to release as stuck.

Stuck keys and pedal (a lost note-off, a pedal that never comes up) are released after a time
without *any* performer activity, not after they went down: a pianist who holds the pedal through
a long phrase is playing, and the call must stay open while they do. Keys go after
``serve.hold_bars`` bars of the performer's pulse (the listener gives it in seconds; a held note
of a bar and a half is no lost note-off), or ``stuck_s`` where that is sooner or no pulse is heard;
the pedal after ``stuck_s``.

A key held down while the playing goes on (a drone under a melody) would keep every later note
from the model, which hears notes in onset order once they are released, and ``pending`` would
grow as long as the key stays down. So when more than ``MAX_PENDING`` notes wait, the held notes
at the front are heard as lasting until now (the key itself stays down for everything else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_PENDING = 32  # notes waiting behind a held key before that key is heard as lasting until now


@dataclass(eq=False)
class InNote:
    """A performer's note: onset known at note_on, duration at note_off (or when forced)."""

    pitch: int
    channel: int
    onset: float
    velocity: int
    off: float | None = None


class Performer:
    def __init__(self, stuck_s: float, chord_s: float) -> None:
        self.stuck_s = stuck_s
        self.chord_s = chord_s  # notes struck within this of a chord's first note are that chord
        self.held: dict[tuple[int, int], InNote] = {}
        self.pending: list[InNote] = []  # not yet fed to the model; onset order
        self.pedal_since: float | None = None
        self.last_activity = -math.inf  # the last key or pedal event

    # ---- events -----------------------------------------------------------------------------

    def note_on(self, channel: int, pitch: int, velocity: int, now: float) -> tuple[InNote, InNote | None]:
        """The new note, and the one it ended (the same key struck again without a note-off)."""
        key = (channel, pitch)
        ended = self.held.pop(key, None)
        if ended is not None:
            ended.off = now
        note = InNote(pitch, channel, now, velocity)
        self.held[key] = note
        self.pending.append(note)
        self.last_activity = max(self.last_activity, now)
        if len(self.pending) > MAX_PENDING:
            self._hear_held_so_far(now)
        return note, ended

    def _hear_held_so_far(self, now: float) -> None:
        """The notes still held at the front of ``pending`` are heard as lasting until ``now`` (a
        copy with that end goes to the model; ``held`` keeps the key down)."""
        closes = self.pending[0].onset + self.chord_s
        self.pending = [replace(n, off=now) if n.onset < closes and n.off is None else n for n in self.pending]

    def note_off(self, channel: int, pitch: int, now: float) -> InNote | None:
        """The note released, or None (released already: stuck, forced, panic; or never seen)."""
        note = self.held.pop((channel, pitch), None)
        if note is not None:
            note.off = now
            self.last_activity = max(self.last_activity, now)
        return note

    def pedal(self, down: bool, now: float) -> None:
        if down and self.pedal_since is None:
            self.pedal_since = now
        elif not down and self.pedal_since is not None:
            self.pedal_since = None
        self.last_activity = max(self.last_activity, now)

    # ---- time -------------------------------------------------------------------------------

    def stuck_deadline(self, hold_s: float | None = None) -> float | None:
        """When whatever is still down counts as released, if nothing happens before: keys after
        ``hold_s`` (``serve.hold_bars`` of the performer's pulse, None while no pulse is known) or
        ``stuck_s``, whichever is first; the pedal after ``stuck_s``."""
        times = [self._keys_deadline(hold_s)] if self.held else []
        if self.pedal_since is not None:
            times.append(self.last_activity + self.stuck_s)
        return min(times) if times else None

    def _keys_deadline(self, hold_s: float | None) -> float:
        return self.last_activity + (self.stuck_s if hold_s is None else min(self.stuck_s, hold_s))

    def release_stuck(self, now: float, hold_s: float | None = None) -> list[InNote]:
        """Keys down with no activity for ``hold_s`` (or ``stuck_s``), the pedal for ``stuck_s``:
        released at that moment."""
        released: list[InNote] = []
        if self.held:
            deadline = self._keys_deadline(hold_s)
            if now >= deadline:
                released = list(self.held.values())
                for note in released:
                    note.off = deadline
                self.held.clear()
        if self.pedal_since is not None and now >= self.last_activity + self.stuck_s:
            self.pedal_since = None
        return released

    def release_all(self, now: float) -> list[InNote]:
        """Every key counts as released now (the input vanished, the call was ended by force)."""
        released = list(self.held.values())
        for note in released:
            note.off = now
        self.held.clear()
        self.pedal_since = None
        return released

    def quiet(self) -> bool:
        """No key and no pedal down."""
        return not self.held and self.pedal_since is None

    # ---- what the model may hear --------------------------------------------------------------

    def group_closes_at(self) -> float | None:
        """When the first pending chord will be ready to hear: it can take no more notes then, and
        all its notes are released already (None: nothing pending, or a key of it still down)."""
        if not self.pending:
            return None
        closes = self.pending[0].onset + self.chord_s
        if any(n.off is None for n in self.pending if n.onset < closes):
            return None
        return closes

    def ready_group(self, now: float, force: bool = False) -> list[InNote] | None:
        """The first pending chord, lowest first, once no note can join it (``chord_s`` after its
        first onset, or ``force``) and all its notes are released; None otherwise."""
        if not self.pending:
            return None
        closes = self.pending[0].onset + self.chord_s
        if now < closes and not force:
            return None  # another note may still join this chord
        group = [n for n in self.pending if n.onset < closes]
        if any(n.off is None for n in group):
            return None
        return sorted(group, key=lambda n: n.pitch)

    def take(self, group: list[InNote]) -> None:
        ids = {id(n) for n in group}
        self.pending = [n for n in self.pending if id(n) not in ids]

    def drop_released(self) -> None:
        """Forget pending notes already released (after a model failure: they were never heard)."""
        self.pending = [n for n in self.pending if n.off is None]

    def forget(self) -> None:
        self.held.clear()
        self.pending.clear()
        self.pedal_since = None
