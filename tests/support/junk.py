"""Junk for the fuzz tests and the fuzz figures (benchmarks/bench_fuzz.py), seeded: random MIDI
byte streams, sessions of junk through the serve loop, and values to try for every setting."""

from __future__ import annotations

import random

from improv.io.clock import FakeClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.settings.serve_section import ServeSettings
from support.fakes import LadderModel, phrase


def random_stream(rng: random.Random, size: int) -> bytes:
    """Bytes a broken driver, a noisy cable or a hostile client might send: notes with running
    status, sysex cut short or left open, real-time bytes anywhere, undefined status bytes."""
    out = bytearray()
    while len(out) < size:
        kind = rng.random()
        if kind < 0.35:
            out += bytes([0x90 | rng.randrange(16), rng.randrange(128), rng.randrange(128)])
        elif kind < 0.5:
            out += bytes([rng.randrange(128) for _ in range(rng.randrange(1, 6))])  # running status / junk
        elif kind < 0.6:
            out += bytes([0xF0, *[rng.randrange(128) for _ in range(rng.randrange(0, 40))]])
            if rng.random() < 0.5:
                out.append(0xF7)
        elif kind < 0.75:
            out.append(rng.choice([0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF, 0xF9, 0xFD, 0xF4, 0xF5, 0xF7, 0xF6]))
        else:
            out.append(rng.randrange(256))
    return bytes(out)


SETTINGS = ServeSettings(estimate_tempo=False, keep_key=False, response_unit="events", response_length=6, stuck_note_s=3.0)


def junk(rng: random.Random) -> list[int]:
    """One burst of bytes a broken keyboard, a cable or a hostile client might send."""
    kind = rng.random()
    ch = rng.randrange(16)
    if kind < 0.3:
        return [0x90 | ch, rng.randrange(128), rng.randrange(128)]
    if kind < 0.45:
        return [0x80 | ch, rng.randrange(128), rng.randrange(128)]
    if kind < 0.55:
        return [rng.randrange(128) for _ in range(rng.randrange(1, 9))]  # running status, or stray data
    if kind < 0.62:
        body = [rng.randrange(128) for _ in range(rng.choice([0, 3, 40, 5000]))]
        return [0xF0, *body] + ([0xF7] if rng.random() < 0.5 else [])  # sysex, maybe never ended
    if kind < 0.7:
        return [0xF8] * rng.randrange(1, 100)  # a clock burst
    if kind < 0.75:
        return [rng.choice([0xFA, 0xFB, 0xFC, 0xFE, 0xFF, 0xF2, 0xF3, 0xF1, 0xF4, 0xF5, 0xF6])] + [rng.randrange(128) for _ in range(2)]
    if kind < 0.9:
        return [0xB0 | ch, rng.choice([64, 1, 7, 20, 21, 22, 23, 24, 25, 120, 123, rng.randrange(128)]), rng.randrange(128)]
    return [rng.choice([0xE0, 0xD0, 0xC0, 0xA0]) | ch, rng.randrange(128), rng.randrange(128)]


def session(seed: int, seconds: float) -> tuple[Engine, MemoryOutput, list[str], ServeLoop]:
    rng = random.Random(seed)
    clock = FakeClock()
    inport = ScriptedInput(clock)
    t = 0.0
    while t < seconds:
        t += rng.expovariate(40.0)  # about 40 bursts a second
        inport.add(t, junk(rng))
    # Every key the junk may have left down comes up (as a player lifting their hands), then a
    # clean call once every answer and stuck-key timer is over.
    for ch in range(16):
        inport.add(t + 0.01, [0xB0 | ch, 64, 0])  # pedals up
        inport.add(t + 0.01, [0xB0 | ch, 123, 0])  # improv takes All Notes Off as nothing special
        inport.add(t + 0.02, [0x80 | ch] + [b for note in range(128) for b in (note, 0)])  # running status
    inport.add(t + 0.02, [0xB0, SETTINGS.cc_mode, 0])  # the junk may have turned the mode knob: back to answer
    start = t + 8.0
    for when, msg in phrase([60, 62, 64, 65], start=start, step=0.3, length=0.25):
        inport.add(when, msg.bytes())  # raw, through the parser like the junk
    out = MemoryOutput(clock)
    engine = Engine(LadderModel(), SETTINGS, seed=seed)
    lines: list[str] = []
    loop = ServeLoop(engine, inport, out, clock, on_status=lines.append)
    loop.run(until=start + 15.0)
    return engine, out, lines, loop


CONFIG_VALUES = [
    0, 1, -1, 2**63, 2**70, -(2**70), 0.5, -0.0, 1e308, float("inf"), float("nan"), True, False, None, "", "x" * 500,
    "auto", "jack", [], [1, "a"], {"a": 1}, [[[[1]]]], "\udcff", "1e999", ".inf", "~", "[1, 2", "&a 1", "*a",
]  # fmt: skip
