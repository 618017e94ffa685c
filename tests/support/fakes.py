"""Test doubles for the real-time path: a predictable step model and message helpers.

``LadderModel`` follows ``inference.StepModel``'s interface exactly, but its answers are simple
enough to predict by hand: each sampled event climbs ``climb`` semitones above the last event fed
(to the nearest pitch the mask allows), every ``offset`` grid classes, lasting ``duration``
classes, at velocity bin ``velocity``. Its state is the last row fed and a count.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from improv.model.sampling import SamplingParams
from improv.music.tokenizer import BOS, OFFSET, PITCH, TOKEN_DTYPE, Tokenizer
from improv.realtime.echo import PROBE_ID


@dataclass(frozen=True)
class LadderState:
    last: tuple[int, int, int, int]
    count: int

    def copy(self) -> "LadderState":
        return self


class LadderModel:
    def __init__(self, tokenizer: Tokenizer | None = None, climb: int = 2, offset: int = 12, duration: int = 6, velocity: int = 4, fail_at: set[int] = frozenset()) -> None:
        self.tokenizer = tokenizer or Tokenizer()
        self.climb, self.offset, self.duration, self.velocity = climb, offset, duration, velocity
        self.fail_at = set(fail_at)  # sample_event raises on these calls (1 = the first)
        self.steps = 0
        self.samples = 0
        self.fed: list[tuple[int, int, int, int]] = []  # every row stepped, in order

    def initial_state(self) -> LadderState:
        return LadderState((BOS, 0, 0, 0), 0)

    def step(self, state: LadderState, row) -> LadderState:
        self.steps += 1
        r = tuple(int(x) for x in row)
        self.fed.append(r)
        return LadderState(r, state.count + 1)

    def prime(self, rows: np.ndarray, state: LadderState | None = None) -> LadderState:
        state = self.initial_state() if state is None else state
        for row in np.asarray(rows):
            state = self.step(state, row)
        return state

    def sample_event(self, state: LadderState, rng: np.random.Generator, params: SamplingParams = SamplingParams(), pitch_mask: np.ndarray | None = None, guide=None) -> np.ndarray:
        self.samples += 1
        if self.samples in self.fail_at:
            raise RuntimeError("the model broke")
        rng.random()  # consume like the real model does, so streams behave alike
        row = np.array([0, self.offset, self.duration, self.velocity], dtype=TOKEN_DTYPE)
        sizes = self.tokenizer.sizes
        if guide is not None:  # the engine's constraints on the offset (a single line: never 0)
            _, mask = guide(OFFSET, row, np.zeros(sizes[OFFSET]), None)
            if mask is not None and not mask[row[OFFSET]]:
                row[OFFSET] = int(np.flatnonzero(mask)[0])
        last = state.last[0] if state.last[0] < BOS else 60
        want = last + self.climb
        pitch = want
        if guide is not None:
            _, pitch_mask = guide(PITCH, row, np.zeros(sizes[PITCH]), pitch_mask)
        if pitch_mask is not None:
            allowed = np.flatnonzero(pitch_mask[:128])
            pitch = int(allowed[np.argmin(np.abs(allowed - want) + (allowed < want) * 0.5)])
        row[PITCH] = pitch
        return row


def on(note: int, velocity: int = 80, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=note, velocity=velocity, channel=channel)


def off(note: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", note=note, velocity=0, channel=channel)


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


def is_probe(msg) -> bool:
    """improv's loopback probe (a sysex with the non-commercial ID): not music."""
    return msg.type == "sysex" and tuple(msg.data[:4]) == PROBE_ID


def kinds(timed) -> list[tuple]:
    """(time rounded to µs, type, note or control, velocity or value) of timed messages, the
    loopback probes left out."""
    out = []
    for t, m in timed:
        if is_probe(m):
            continue
        if m.type in ("note_on", "note_off"):
            out.append((round(t, 6), m.type, m.note, m.velocity))
        elif m.type == "control_change":
            out.append((round(t, 6), m.type, m.control, m.value))
        else:
            out.append((round(t, 6), m.type))
    return out


def unclosed(timed) -> dict[tuple[int, int], int]:
    """Notes left sounding by a stream of timed messages: (channel, note) -> count."""
    sounding: dict[tuple[int, int], int] = {}
    for _, m in timed:
        if m.type == "note_on" and m.velocity > 0:
            sounding[(m.channel, m.note)] = sounding.get((m.channel, m.note), 0) + 1
        elif m.type in ("note_on", "note_off"):
            sounding.pop((m.channel, m.note), None)
        elif m.type == "control_change" and m.control == 123:
            for key in [k for k in sounding if k[0] == m.channel]:
                del sounding[key]
    return sounding


def simulate(engine, script, until: float, think: bool = True, max_turns: int = 100000, delay: float = 0.0, start: float = 0.0):
    """Drive ``engine`` in simulated time the way the serve loop does, with unlimited think time:
    deliver each scripted (time, message) at its time, call ``due`` at every deadline, and let the
    engine think fully after each turn. Returns every message sent, with its scheduled time.
    ``delay``: each message is handed over that much later, stamped with its time (as the loop
    drains input stamped on arrival after a think slice)."""
    script = sorted(script, key=lambda tm: tm[0])
    out = []
    now = start
    i = 0
    for _ in range(max_turns):
        times = [script[i][0] + delay] if i < len(script) else []
        wake = engine.next_wakeup() if think else engine.next_deadline()
        if wake is not None:
            times.append(max(wake, now))
        if not times or min(times) > until:
            break
        now = max(now, min(times))
        while i < len(script) and script[i][0] + delay <= now:
            engine.on_message(script[i][1], script[i][0] if delay else now)
            i += 1
        out += engine.due(now)
        while think and engine.wants_think(now):
            engine.think(now, 1000)
        out += engine.due(now)
    else:
        raise AssertionError("simulation did not settle")
    return out


def phrase(notes, start: float = 0.0, step: float = 0.25, length: float = 0.2, velocity: int = 80):
    """(time, message) pairs for single notes played one after another, ``step`` seconds apart."""
    script = []
    for k, note in enumerate(notes):
        t = start + k * step
        script.append((t, on(note, velocity)))
        script.append((t + length, off(note)))
    return script


class PolledPorts:
    """``ports.check()`` every ``every_s`` on the loop's own clock, first at ``first``: what the
    session's supervisor thread does (``session.supervisor``), in simulated time."""

    def __init__(self, ports, every_s: float = 1.0, first: float = 0.0) -> None:
        self.ports, self.every_s, self._next = ports, every_s, first

    def take(self, now: float):
        if now < self._next:
            return []
        self._next = now + self.every_s
        return self.ports.check()

    def next_check(self) -> float:
        return self._next


class FakeLink:
    """A Link session for the engine (``realtime.link_follower.LinkSource``) in simulated time:
    ``bpm`` with a bar line at ``downbeat`` (bars of ``quantum`` beats), ``peers`` others in it.
    A lead (``lead``) is recorded and, as Link does, applied at once (the view's tempo and bar)."""

    def __init__(self, bpm: float = 120.0, downbeat: float = 0.0, peers: int = 1, quantum: int = 4) -> None:
        self.bpm, self.downbeat, self.peers, self.quantum = bpm, downbeat, peers, quantum
        self.leads: list[tuple[float, float]] = []
        self.at = float("inf")  # when the view was taken: always fresh; a time = stale a second later (a stalled shell)

    def view(self):
        from improv.io.link_session import LinkView

        return LinkView(self.at, self.bpm, self.downbeat, self.quantum, self.peers)

    def lead(self, bpm: float, downbeat: float) -> None:
        self.leads.append((bpm, downbeat))
        self.bpm = bpm
        if self.peers == 0:
            self.downbeat = downbeat
