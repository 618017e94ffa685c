"""Random MIDI byte streams into the engine through the serve loop, with in-memory ports and a fake
clock (issue 14, the harness): junk of every kind (notes and releases at random, running status,
sysex cut off or oversized, clock bursts, transport, controllers including improv's own, pitch
bends, undefined bytes) for a simulated minute or more, then a clean call. Seeded and bounded.
Invariants: no exception and no engine error reported; every note_on improv sent is closed when
the session ends; the engine's memory stays bounded however long the junk goes on; and the clean
call after the junk is answered."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from support.fakes import LadderModel, phrase, unclosed

from improv.io.clock import FakeClock
from improv.io.memory_ports import MemoryOutput, ScriptedInput
from improv.realtime.engine import Engine
from improv.session.loop import ServeLoop
from improv.settings.sections import ServeSettings

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
    start = t + 8.0
    for when, msg in phrase([60, 62, 64, 65], start=start, step=0.3, length=0.25):
        inport.add(when, msg.bytes())  # raw, through the parser like the junk
    out = MemoryOutput(clock)
    engine = Engine(LadderModel(), SETTINGS, seed=seed)
    lines: list[str] = []
    loop = ServeLoop(engine, inport, out, clock, on_status=lines.append)
    loop.run(until=start + 15.0)
    return engine, out, lines, loop


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_random_byte_streams_through_the_serve_loop(seed):
    engine, out, lines, loop = session(seed, seconds=60.0)
    assert not [line for line in lines if "error" in line], lines
    assert unclosed(out.sent) == {}, "a note was left sounding"
    call = [line for line in lines if line.startswith("#") and " call 4 notes" in line]
    assert call, f"the clean call after the junk was not answered: {lines[-3:]}"
    last_call_start = max(t for t, m in out.sent) - 15.0
    assert any(m.type == "note_on" and m.velocity > 0 and t > last_call_start for t, m in out.sent)


def test_memory_stays_bounded_however_long_the_junk_goes_on():
    """The engine's memory after 10 simulated minutes of junk is about what it is after one."""

    def grown(seconds: float) -> int:
        tracemalloc.start()
        try:
            engine, out, lines, loop = session(99, seconds)
            out.sent.clear()  # what the test's own output port recorded is not the engine's
            loop.stats.exchanges.clear()
            import gc

            gc.collect()
            size, _ = tracemalloc.get_traced_memory()
            del engine, out, lines, loop
        finally:
            tracemalloc.stop()
        return size

    short, long = grown(60.0), grown(600.0)
    assert long < short * 1.5 + 2_000_000, (short, long)
