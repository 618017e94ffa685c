"""The performer's side of the engine: keys and pedal in, the call they make, and the events the
model hears, one chord at a time, as keys come up.

A note is heard once its key is released (its length is known then): its offset from the event
before on the beat grid at the current tempo, chord members (struck within ``chord_ms``) lowest
first with offset 0, as the corpus has them. The call ends on silence, the end-of-call switch or
its maximum length (``calls``); the answer may be prepared once the performer is quiet.
"""

from __future__ import annotations

from typing import Sequence

from improv.music.pulse_track import MAX_BPM
from improv.realtime.calls import (
    Call,
    end_deadlines,
    end_reason,
    quiet_enough,
    threshold_s,
)
from improv.realtime.context import ModelContext
from improv.realtime.performer import InNote, Performer
from improv.realtime.quantiser import Quantiser
from improv.realtime.report import Recorder
from improv.realtime.tempo import call_pulse
from improv.settings.serve_section import ServeSettings

SPEC_DELAY_S = 0.15  # prepare the answer once the silence has lasted this long (or a third of the threshold)


class Listener:
    def __init__(self, settings: ServeSettings, context: ModelContext, quantiser: Quantiser, recorder: Recorder | None) -> None:
        self.settings = settings
        self.context = context
        self.quantiser = quantiser
        self.recorder = recorder
        self.performer = Performer(settings.stuck_note_s, settings.chord_ms / 1000)
        self.call: Call | None = None
        self._call_bar: tuple[tuple[int, float] | None, float | None] = (None, None)  # (the call's notes and last activity it was heard at, its bar)

    # ---- what comes in --------------------------------------------------------------------------

    def key_down(self, channel: int, pitch: int, velocity: int, now: float) -> None:
        note, _ = self.performer.note_on(channel, pitch, velocity, now)
        if self.call is None:
            self.call = Call(first_onset=now, last_activity=now)
        self.call.add(note)
        if self.recorder is not None:
            self.recorder.note_on("performer", channel, pitch, velocity, now)

    def key_up(self, channel: int, pitch: int, now: float) -> None:
        if self.recorder is not None:
            self.recorder.note_off("performer", channel, pitch, now)
        if self.performer.note_off(channel, pitch, now) is not None and self.call is not None:
            self.call.touch(now)

    def pedal(self, down: bool, now: float) -> None:
        self.performer.pedal(down, now)
        if self.call is not None:
            self.call.touch(now)

    def hold_s(self, bar_s: float | None, now: float | None = None) -> float | None:
        """How long keys may be held with nothing else played before they count as released:
        ``hold_bars`` bars of the performer's pulse: the set's (``bar_s``), or while the set has
        none (its first call) the call's own (``_call_bar_s``); None where neither is known: then
        ``stuck_note_s``. A note-off lost to an xrun ends the call as the band's rule ends the
        band, not ``stuck_note_s`` later."""
        if bar_s is None:
            bar_s = self._call_bar_s(now)
        return None if bar_s is None else self.settings.hold_bars * bar_s

    def _call_bar_s(self, now: float | None) -> float | None:
        """``bar_beats`` beats of the call's own pulse, heard from its onsets (``tempo.call_pulse``),
        or None where it has no clear one. Heard once per call and key still down, and only once
        the keys have been still for ``hold_bars`` of the shortest bar the comb hears (its 10-25
        ms on the loop's thread fall in a stuck key's silence, not between a performer's notes):
        until then that shortest bar stands in, which makes that moment the deadline to look."""
        call, performer = self.call, self.performer
        if call is None or not performer.held:
            return None
        key = (call.note_count, performer.last_activity)
        if self._call_bar[0] == key:
            return self._call_bar[1]
        shortest = self.settings.bar_beats * 60 / MAX_BPM
        if now is None or now < performer.last_activity + self.settings.hold_bars * shortest:
            return shortest
        pulse = call_pulse(list(call.notes), self.settings, now)
        self._call_bar = (key, None if pulse is None else self.settings.bar_beats * 60 / pulse.bpm)
        return self._call_bar[1]

    def stuck_deadline(self, bar_s: float | None) -> float | None:
        return self.performer.stuck_deadline(self.hold_s(bar_s))

    def release_stuck(self, now: float, bar_s: float | None) -> list[InNote]:
        performer = self.performer
        pedal_at = performer.last_activity + performer.stuck_s if performer.pedal_since is not None else None
        released = performer.release_stuck(now, self.hold_s(bar_s, now))
        self._recorded(released)
        if self.call is not None:
            ends = [n.off for n in released if n.off is not None]
            if pedal_at is not None and performer.pedal_since is None:
                ends.append(pedal_at)  # the pedal let go as stuck: the call's silence runs from then
            if ends:
                self.call.touch(max(ends))
        return released

    def release_all(self, now: float) -> list[InNote]:
        """Every key counts as released now (the input vanished; the call ended with keys down)."""
        released = self.performer.release_all(now)
        self._recorded(released)
        if self.call is not None:
            self.call.touch(now)
        return released

    def _recorded(self, notes: Sequence[InNote]) -> None:
        if self.recorder is not None:
            for note in notes:
                self.recorder.note_off("performer", note.channel, note.pitch, note.off if note.off is not None else note.onset)

    # ---- what the model hears ----------------------------------------------------------------------

    def ready(self, now: float) -> bool:
        return self.performer.ready_group(now) is not None

    def hear(self, now: float, bpm: float, force: bool = False) -> int:
        """Feed released notes to the model, chord by chord (one chord, or all with ``force``);
        returns the steps done."""
        steps = 0
        while True:
            group = self.performer.ready_group(now, force)
            if group is None:
                return steps
            self.performer.take(group)
            for i, note in enumerate(group):
                self._hear(note, i > 0, bpm)
                steps += 1
            if not force:
                return steps

    def _hear(self, note: InNote, chord: bool, bpm: float) -> None:
        assert note.off is not None
        call, ctx = self.call, self.context
        if call is not None and not call.events:
            call.pos_before = ctx.pos
            call.sound_before = max((e.onset + e.duration for e in ctx.window if e.pitch <= 127), default=None)  # a held note is no pause
        offset, pos = self.quantiser.offset(note.onset, ctx.pos, chord, bpm)
        row = self.quantiser.row(note.pitch, offset, note.off - note.onset, note.velocity, bpm)
        event = ctx.hear(row, pos, note.onset, note.off - note.onset, note.pitch, note.velocity, chord)
        if call is not None:
            call.events.append(event)

    # ---- when the call ends ---------------------------------------------------------------------------

    def quiet(self) -> bool:
        """The call may be over: enough notes, every key and the pedal up, everything heard."""
        return quiet_enough(self.call, self.performer, self.settings)

    def speculate_at(self, bpm: float) -> float:
        """When to start preparing the answer: not in every short gap between notes."""
        assert self.call is not None
        return self.call.last_activity + min(SPEC_DELAY_S, threshold_s(self.settings, bpm) / 3)

    def end_reason(self, now: float, bpm: float) -> tuple[str, float] | None:
        return end_reason(self.call, self.performer.quiet(), self.settings, bpm, now) if self.call is not None else None

    def deadlines(self, bpm: float, bar_s: float | None) -> list[float | None]:
        times: list[float | None] = [self.stuck_deadline(bar_s)]
        if self.call is not None:
            times.extend(end_deadlines(self.call, self.performer.quiet(), self.settings, bpm))
        return times
