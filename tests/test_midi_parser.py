"""MidiParser: raw bytes as a port really delivers them (cut-off and oversized sysex, running
status abuse, junk), and a seeded fuzz over random byte streams."""

from __future__ import annotations

import random
import tracemalloc

import mido
import pytest

from support.junk import random_stream

from improv.io.midi_parser import MAX_SYSEX_BYTES, MidiParser


def parse(*chunks) -> list[mido.Message]:
    parser = MidiParser()
    out = []
    for chunk in chunks:
        parser.feed(chunk)
        out.extend(parser)
    return out


def notes(msgs) -> list[tuple]:
    return [(m.type, m.note, m.velocity) for m in msgs if m.type in ("note_on", "note_off")]


def test_a_cut_off_sysex_is_dropped_at_the_next_status_byte():
    # F0 01 02 and no F7: the note after it is heard, at once, and so is everything later.
    assert notes(parse([0xF0, 1, 2], [0x90, 60, 80], [0x80, 60, 0])) == [("note_on", 60, 80), ("note_off", 60, 0)]
    assert notes(parse([0xF0, 1, 2, 0x90, 60, 80, 62, 80])) == [("note_on", 60, 80), ("note_on", 62, 80)]
    # what rtmidi's JACK backend delivers after the F7 that ends its wait: every held note
    blob = [0xF0, 1, 2, 0x90, 62, 100, 0x80, 62, 0, 0xF7]
    assert notes(parse(blob)) == [("note_on", 62, 100), ("note_off", 62, 0)]


def test_a_sysex_split_over_callbacks_is_one_message():
    got = parse([0xF0, 0x7D, 1], [2, 3], [4, 0xF7])
    assert [(m.type, list(m.data)) for m in got] == [("sysex", [0x7D, 1, 2, 3, 4])]


def test_real_time_bytes_inside_a_sysex_are_messages_of_their_own():
    got = parse([0xF0, 1, 0xF8, 2, 0xF7])
    assert [m.type for m in got] == ["clock", "sysex"] and list(got[1].data) == [1, 2]


def test_an_oversized_sysex_is_dropped_without_keeping_its_bytes():
    huge = bytes([0xF0]) + bytes(10_000_000) + bytes([0xF7, 0x90, 60, 80])
    parser = MidiParser()
    tracemalloc.start()
    try:
        parser.feed(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert notes(parser) == [("note_on", 60, 80)]
    assert peak < 1_000_000, f"the parser kept {peak} bytes of a sysex it drops"
    # the bound itself: one byte under it is a message, one over it is not
    assert [m.type for m in parse([0xF0, *[1] * MAX_SYSEX_BYTES, 0xF7])] == ["sysex"]
    assert parse([0xF0, *[1] * (MAX_SYSEX_BYTES + 1), 0xF7]) == []


def test_an_oversized_sysex_in_many_chunks_is_dropped_too():
    parser = MidiParser()
    parser.feed([0xF0])
    for _ in range(100):
        parser.feed([5] * 1000)
    parser.feed([0xF7, 0x90, 61, 70])
    assert notes(parser) == [("note_on", 61, 70)]


def test_running_status_abuse_and_junk():
    got = parse(
        [60, 1, 2],  # data bytes with no status: junk
        [0x90, 60, 80, 62, 81, 64],  # running status: two notes, then half of a third
        [82, 0xF4, 65, 66],  # its end; an undefined status byte cancels running status
        [0xF2, 1],  # half a song position ...
        [0x90, 67, 83],  # ... cut off by a status byte: dropped
        [0xC0, 5, 6],  # program change, running status: two of them
        [300, -1, 0x1FF],  # taken mod 256: 44 (program change, running status), reset, reset
    )
    assert notes(got) == [("note_on", 60, 80), ("note_on", 62, 81), ("note_on", 64, 82), ("note_on", 67, 83)]
    assert [m.program for m in got if m.type == "program_change"] == [5, 6, 44]
    assert [m.type for m in got].count("reset") == 2


@pytest.mark.parametrize("seed", range(4))


def test_fuzz_random_byte_streams_never_break_the_parser(seed):
    """Seeded: 4 x 300 streams of up to 2 kB, fed in random chunks. Invariants: no exception,
    every message is a valid mido message, the parser's memory stays bounded, and a clean note
    after the junk (behind a status byte) is always heard."""
    rng = random.Random(seed)
    for _ in range(300):
        parser = MidiParser()
        data = random_stream(rng, rng.randrange(1, 2048))
        i = 0
        while i < len(data):
            step = rng.randrange(1, 64)
            parser.feed(list(data[i : i + step]))
            i += step
            for msg in parser:
                assert isinstance(msg, mido.Message)
                mido.Message.from_bytes(msg.bytes())  # round-trips: well formed
        assert parser._sysex is None or len(parser._sysex) <= MAX_SYSEX_BYTES
        parser.feed([0x90, 60, 99])  # a status byte ends any junk in progress
        assert ("note_on", 60, 99) in notes(parser)
