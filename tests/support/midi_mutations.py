"""Broken MIDI files, made on purpose and reproducibly (a seed): what a corpus folder, a prompt or
a download may really hold. Shared by the fuzz tests and the reliability figures in the README.

``base_midi()`` is a small valid type-1 file; ``mutations(rng, n)`` yields (kind, bytes) of ``n``
files, each the base (or a file built by hand) broken in one of the ways in ``KINDS``.
"""

from __future__ import annotations

import random
import struct
from typing import Iterator

KINDS = ("flip", "truncate", "tempo", "delta", "running-status", "chunk-length", "division", "splice", "garbage")


def varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (up to 4 bytes; larger values are cut to 28 bits)."""
    value &= 0x0FFFFFFF
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def track(events: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(events)) + events


def header(fmt: int = 1, ntracks: int = 2, division: int = 480) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, ntracks, division & 0xFFFF)


def tempo_event(us_per_beat: int, delta: int = 0) -> bytes:
    return varlen(delta) + b"\xff\x51\x03" + (us_per_beat & 0xFFFFFF).to_bytes(3, "big")


def notes_track(pitches=(60, 62, 64, 65, 67), step: int = 240, delta_first: int = 0, running: bool = False) -> bytes:
    body = bytearray()
    for i, p in enumerate(pitches):
        body += varlen(delta_first if i == 0 else 0) + bytes([0x90, p, 90])
        body += varlen(step) + (bytes([p, 0]) if running else bytes([0x80, p, 0]))
    return track(bytes(body) + b"\x00\xff\x2f\x00")


def base_midi(us_per_beat: int = 500_000) -> bytes:
    return header() + track(tempo_event(us_per_beat) + b"\x00\xff\x2f\x00") + notes_track()


def mutations(rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        yield kind, _mutate(rng, kind)


def _mutate(rng: random.Random, kind: str) -> bytes:
    base = bytearray(base_midi())
    if kind == "flip":
        for _ in range(rng.randrange(1, 8)):
            base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)
        return bytes(base)
    if kind == "truncate":
        return bytes(base[: rng.randrange(0, len(base))])
    if kind == "tempo":  # tempo 0 (a division by zero), 1 us, the largest, several changes
        tempi = rng.choice([[0], [1], [0xFFFFFF], [0, 500_000], [500_000, 0], [rng.randrange(0, 1 << 24) for _ in range(5)]])
        events = b"".join(tempo_event(t, rng.choice([0, 1, 480])) for t in tempi)
        return header() + track(events + b"\x00\xff\x2f\x00") + notes_track()
    if kind == "delta":  # huge delta times: notes days apart, a note lasting years
        delta = rng.choice([0x0FFFFFFF, 0x0FFFFFF0, 1 << 27, rng.randrange(1 << 20, 1 << 28)])
        pitches = tuple(rng.randrange(128) for _ in range(rng.randrange(1, 6)))
        return header() + track(tempo_event(500_000) + b"\x00\xff\x2f\x00") + notes_track(pitches, step=delta, delta_first=rng.choice([0, delta]))
    if kind == "running-status":  # running status across meta events, at the track's start, mixed
        body = bytearray(b"\x00\x3c\x40")  # data with no status at all
        body += b"\x00\x90\x3c\x40\x00\xff\x01\x01x\x10\x3e\x40"  # running status across a text event
        body += bytes(rng.randrange(128) for _ in range(rng.randrange(0, 20)))
        body += b"\x00\xff\x2f\x00"
        return header(ntracks=1) + track(bytes(body))
    if kind == "chunk-length":  # a track that says it is longer or shorter than it is
        t = bytearray(notes_track())
        struct.pack_into(">I", t, 4, rng.choice([0, 1, 3, 0xFFFFFFFF, len(t) * 100, rng.randrange(1 << 32)]))
        return header(ntracks=1) + bytes(t)
    if kind == "division":  # 0 ticks per beat, SMPTE time with 0 ticks per frame, odd formats
        division = rng.choice([0, 0x8000, 0xE200, 0xE800 | rng.randrange(256), 1, 0x7FFF])
        return header(fmt=rng.choice([0, 1, 2, 3, 0xFFFF]), ntracks=rng.choice([0, 1, 2, 100]), division=division) + notes_track()
    if kind == "splice":  # two files' bytes glued, or a track repeated many times
        other = base_midi(rng.randrange(1, 1 << 24))
        cut = rng.randrange(len(base))
        return bytes(base[:cut]) + other[rng.randrange(len(other)) :]
    size = rng.randrange(0, 400)  # garbage behind a valid header
    return header(ntracks=rng.randrange(0, 4)) + bytes(rng.randrange(256) for _ in range(size))
