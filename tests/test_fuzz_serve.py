"""Random MIDI byte streams into the engine through the serve loop, with in-memory ports and a fake
clock (issue 14, the harness): junk of every kind (notes and releases at random, running status,
sysex cut off or oversized, clock bursts, transport, controllers including improv's own, pitch
bends, undefined bytes) for a simulated minute or more, then a clean call. Seeded and bounded.
Invariants: no exception and no engine error reported; every note_on improv sent is closed when
the session ends; the engine's memory stays bounded however long the junk goes on; and the clean
call after the junk is answered."""

from __future__ import annotations

import tracemalloc

import pytest
from support.fakes import unclosed
from support.junk import session


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
            for voice in engine.voices:  # nor every row the fake model was fed (a solo feeds it; notes behind a held key are heard now)
                voice.model.fed.clear()
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
