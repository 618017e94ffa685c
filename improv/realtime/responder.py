"""The answer's life once the call has ended: its start on the beat, its notes leaving on time
(or dropped, or moved, after a stall), its end, and the report of the exchange.

The responder owns the answer in progress and the exchanges' reports; the output (sounding notes)
and the model context (what the model has heard) are the engine's, lent to it.
"""

from __future__ import annotations

from typing import Any

from improv.realtime.answer import Answer
from improv.realtime.calls import Call
from improv.realtime.context import ModelContext
from improv.realtime.output import Output, Timed
from improv.realtime.report import Exchange, Recorder
from improv.realtime.tempo import answer_time
from improv.settings.serve_section import ServeSettings


class Responder:
    def __init__(self, settings: ServeSettings, output: Output, context: ModelContext, recorder: Recorder | None) -> None:
        self.settings = settings
        self.output = output
        self.context = context
        self.recorder = recorder
        self.answer: Answer | None = None  # speculative while listening, playing while responding
        self.responding = False
        self.exchanges = 0
        self.reports: list[Exchange] = []
        self.started: Exchange | None = None  # its first note was in the last batch
        self.decided: Exchange | None = None  # its call ended in the last batch

    def start(self, answer: Answer, call: Call, reason: tuple[str, float], now: float, threshold_s: float, grid: str, sync_units: int, voice: str) -> None:
        """The call has ended (``reason``: why, and when): ``answer``, its first note placed
        already (``answer.playback.start``, on ``grid``), plays from now on."""
        self.exchanges += 1
        call_end = max(n.off if n.off is not None else now for n in call.notes)
        call_onset = call.first_onset
        assert answer.playback is not None
        exchange = answer.playback.exchange = Exchange(
            number=self.exchanges,
            end_reason=reason[0],
            call_notes=call.note_count,
            call_beats=(call_end - call.first_onset) * answer.reading.bpm / 60,
            bpm=answer.reading.bpm,
            tempo_source=answer.reading.tempo_source,
            key=answer.reading.key,
            decided_at=reason[1],
            threshold_s=threshold_s,
            grid=grid,
            sync_units=sync_units,
            voice=voice,
        )
        for p in answer.planned:
            p.onset = answer_time(answer.playback, p.note.start, p.note.velocity, self.settings)
        if self.recorder is not None:
            self.recorder.tempo(call_onset, answer.reading.bpm, f"call {exchange.number}: {answer.reading.key or 'any key'}, {answer.reading.bpm:.0f} bpm")
            self.recorder.tempo(answer.playback.start, answer.reading.bpm, f"answer {exchange.number}" + (f" ({exchange.voice})" if exchange.voice else ""))
        self.answer = answer
        self.decided = exchange
        self.responding = True
        if not answer.planned:
            self.finish("finished")

    def play(self, now: float, out: list[Timed]) -> None:
        """The answer's notes whose time has come. One due more than ``late_ms`` ago (the machine
        stalled) is dropped, or the rest of the answer moves later (``late_policy``); its first
        note is never dropped: the answer starts late instead."""
        a = self.answer
        assert a is not None and a.playback is not None and a.playback.exchange is not None
        pb, exchange = a.playback, a.playback.exchange
        late_s = self.settings.late_ms / 1000
        while a.planned and a.planned[0].onset <= now:
            p = a.planned[0]
            if now - p.onset > late_s:  # no burst of late notes
                if self.settings.late_policy == "shift" or exchange.first_note_at is None:
                    self._shift(a, now - p.onset)
                    continue
                a.planned.popleft()
                pb.late_dropped += 1
                self.context.adopt(p.row, p.state, p.onset, p.onset, 0.0, p.note.pitch, p.note.velocity)  # planned, not heard: the model's own
                continue
            a.planned.popleft()
            duration_s = pb.pulse.time(pb.first_beat + p.note.start + p.note.duration) - pb.pulse.time(pb.first_beat + p.note.start)  # swung
            if a.reading.max_voices == 1:  # a single line: the note sounding now ends as this one starts
                for pitch in list(self.output.sounding):
                    self.output.end_at(pitch, p.onset)
            self.output.start(p.msg, p.onset, duration_s, out)
            # The note is now part of the performance: window, running state, grid position.
            self.context.adopt(p.row, p.state, p.onset, p.onset, duration_s, p.note.pitch, p.note.velocity)
            exchange.response_notes += 1
            if exchange.first_note_at is None:
                exchange.first_note_at = p.onset
                self.started = exchange
        exchange.late_dropped = pb.late_dropped
        if a.sampling.finished and not a.planned:
            self.finish("finished")

    @staticmethod
    def _shift(a: Answer, delay: float) -> None:
        pb = a.playback
        assert pb is not None and pb.exchange is not None
        pb.start += delay
        pb.shift += delay
        for p in a.planned:
            p.onset = (p.onset or 0.0) + delay
        pb.exchange.late_shifted_s += delay

    def finish(self, how: str) -> None:
        a = self.answer
        if a is not None and a.playback is not None and a.playback.exchange is not None:
            a.playback.exchange.ended = how
            self.reports.append(a.playback.exchange)
        self.answer = None
        self.responding = False

    def stop(self, now: float, how: str) -> None:
        """End the answer now: unsent notes dropped, sounding ones get their note-off now."""
        if self.responding:
            self.output.silence(now)
            self.finish(how)

    def next_note(self) -> float | None:
        a = self.answer
        return a.planned[0].onset if self.responding and a is not None and a.planned else None

    def take(self, what: str, empty: Any) -> Any:
        """``reports``, ``started`` or ``decided``, handed over once (then ``empty``)."""
        out = getattr(self, what)
        setattr(self, what, empty)
        return out

    def drop_speculation(self) -> None:
        """A prepared answer that has not started no longer fits (a new note, another voice)."""
        if not self.responding:
            self.answer = None

    def model_for(self, voices: Any) -> Any:
        assert self.answer is not None
        return voices[self.answer.reading.voice].model
