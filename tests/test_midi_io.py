"""The MIDI reader: note pairing, sustain pedal, drums, file types, resolutions, tempo, bad files."""

from __future__ import annotations

import io
import random
import struct

import mido
import pytest

from improv.errors import MIDIConversionError
from improv.music.midi import (
    Track,
    midi_bytes,
    notes_from_midi_bytes,
    read_midi,
    read_midi_file,
)
from improv.music.notes import Note


def on(note, tick, velocity=80, channel=0):
    return ("note_on", tick, dict(note=note, velocity=velocity, channel=channel))


def off(note, tick, channel=0, kind="note_off"):
    return (kind, tick, dict(note=note, velocity=0, channel=channel))


def pedal(tick, value, channel=0):
    return ("control_change", tick, dict(control=64, value=value, channel=channel))


def tempo(tick, bpm):
    return ("set_tempo", tick, dict(tempo=mido.bpm2tempo(bpm)))


def make_midi(*tracks, midi_type=1, tpb=480) -> bytes:
    """A MIDI file from tracks of (kind, absolute tick, fields); events sorted by tick (stable)."""
    mid = mido.MidiFile(type=midi_type, ticks_per_beat=tpb)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for kind, tick, fields in sorted(events, key=lambda e: e[1]):
            cls = mido.MetaMessage if kind == "set_tempo" else mido.Message
            track.append(cls(kind, time=tick - now, **fields))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def simple(notes):
    return [(n.pitch, n.start, n.duration, n.velocity) for n in notes]


def test_velocity_zero_note_on_is_a_note_off():
    data = make_midi([on(60, 0), off(60, 480, kind="note_on"), on(62, 480, 100), off(62, 960)])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 1.0, 80), (62, 1.0, 1.0, 100)]


def test_restruck_pitch_ends_the_earlier_note():
    data = make_midi([on(60, 0), on(60, 240, 90), off(60, 480), off(60, 720)])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 0.5, 80), (60, 0.5, 0.5, 90)]


def test_unclosed_note_ends_with_its_track_and_zero_length_is_kept():
    data = make_midi([on(60, 0), on(64, 480), off(64, 480), ("control_change", 1920, dict(control=7, value=100))])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 4.0, 80), (64, 1.0, 1 / 480, 80)]


def test_sustain_pedal_holds_released_notes_until_it_comes_up():
    data = make_midi([on(60, 0), pedal(120, 127), off(60, 480), on(64, 480), off(64, 720), pedal(960, 0), on(67, 960), off(67, 1200)])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 2.0, 80), (64, 1.0, 1.0, 80), (67, 2.0, 0.5, 80)]
    # Ignoring the pedal gives the keys' own lengths.
    assert simple(read_midi(data, sustain=False).notes)[:2] == [(60, 0.0, 1.0, 80), (64, 1.0, 0.5, 80)]


def test_sustain_cut_by_the_same_pitch_struck_again():
    data = make_midi([pedal(0, 100), on(60, 0), off(60, 240), on(60, 480), off(60, 600), pedal(960, 0)])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 1.0, 80), (60, 1.0, 1.0, 80)]


def test_note_held_past_pedal_release_keeps_its_own_end():
    data = make_midi([on(60, 0), pedal(0, 127), pedal(480, 0), off(60, 960)])
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 2.0, 80)]


def test_pedal_never_released_extends_to_the_end_of_the_file():
    data = make_midi([pedal(0, 127), on(60, 0), off(60, 240)], [on(48, 0), off(48, 1920)])
    assert simple(notes_from_midi_bytes(data)) == [(48, 0.0, 4.0, 80), (60, 0.0, 4.0, 80)]


def test_pedal_applies_per_channel_across_tracks():
    # Both hands on channel 0, the pedal only in the left hand's track: a synthesizer holds both.
    # A pedal on channel 1 holds nothing on channel 0.
    right = [on(72, 0), off(72, 240)]
    left = [pedal(0, 127), on(48, 0), off(48, 240), pedal(960, 0), pedal(0, 127, channel=1)]
    notes = notes_from_midi_bytes(make_midi(right, left))
    assert simple(notes) == [(48, 0.0, 2.0, 80), (72, 0.0, 2.0, 80)]
    other = [pedal(0, 127, channel=1), pedal(960, 0, channel=1)]
    assert simple(notes_from_midi_bytes(make_midi(right, other))) == [(72, 0.0, 0.5, 80)]


def test_drums_are_left_out_and_counted():
    data = make_midi([on(36, 0, channel=9), off(36, 240, channel=9), on(60, 0), off(60, 480)])
    content = read_midi(data)
    assert simple(content.notes) == [(60, 0.0, 1.0, 80)]
    assert content.drum_notes == 1


def test_type0_and_type1_give_the_same_notes():
    tracks = [
        [tempo(0, 90)],
        [on(60, 0), off(60, 480), on(64, 480, 70), off(64, 960), pedal(500, 127), pedal(1500, 0)],
        [on(48, 0, 60, channel=1), off(48, 960, channel=1), on(50, 960, channel=1), off(50, 1440, channel=1)],
    ]
    type1 = mido.MidiFile(file=io.BytesIO(make_midi(*tracks)))
    type0 = mido.MidiFile(type=0, ticks_per_beat=type1.ticks_per_beat)
    type0.tracks.append(mido.merge_tracks(type1.tracks))
    buffer = io.BytesIO()
    type0.save(file=buffer)
    a, b = read_midi(make_midi(*tracks)), read_midi(buffer.getvalue())
    assert (a.midi_type, b.midi_type) == (1, 0)
    assert a.notes == b.notes and len(a.notes) == 4
    assert a.bpm == b.bpm == 90.0


def test_type2_tracks_play_one_after_the_other():
    data = make_midi([on(60, 0), off(60, 480)], [on(62, 0), off(62, 480)], midi_type=2)
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 1.0, 80), (62, 1.0, 1.0, 80)]


@pytest.mark.parametrize("tpb", [1, 24, 97, 384, 1024, 15360])
def test_odd_resolutions_give_beats(tpb):
    data = make_midi([on(60, 2 * tpb), off(60, 3 * tpb), on(61, 3 * tpb), off(61, 3 * tpb + (tpb + 1) // 2)], tpb=tpb)
    notes = notes_from_midi_bytes(data)
    assert [(n.pitch, n.start) for n in notes] == [(60, 2.0), (61, 3.0)]
    assert notes[0].duration == 1.0 and notes[1].duration == pytest.approx(((tpb + 1) // 2) / tpb)


def test_tempo_changes_do_not_move_beats_and_first_tempo_is_kept():
    data = make_midi([tempo(0, 75), tempo(100, 150), tempo(960, 60)], [on(60, 480), off(60, 960), on(62, 1440), off(62, 1920)])
    content = read_midi(data)
    assert [(n.start, n.duration) for n in content.notes] == [(1.0, 1.0), (3.0, 1.0)]
    assert content.bpm == 150.0  # in effect at the first note
    assert content.tempo_changes == 2
    assert read_midi(make_midi([on(60, 0), off(60, 1)])).bpm == 120.0  # MIDI's default


def test_running_status_from_raw_bytes():
    # note_on C4, then D4 and both note-offs (velocity 0) with running status: no status bytes.
    body = bytes([0x00, 0x90, 60, 64, 0x00, 62, 70, 0x83, 0x60, 60, 0, 0x00, 62, 0, 0x00, 0xFF, 0x2F, 0x00])
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(body)) + body
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 1.0, 64), (62, 0.0, 1.0, 70)]


def test_smpte_division_is_read_in_seconds_at_the_first_tempo():
    # 25 frames/s x 40 ticks/frame = 1000 ticks per second; at 120 bpm a beat is 500 ticks.
    body = bytes([0x00, 0x90, 60, 64, 0x83, 0x74, 60, 0, 0x00, 0xFF, 0x2F, 0x00])  # off after 500 ticks
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0xE728) + b"MTrk" + struct.pack(">I", len(body)) + body
    assert simple(notes_from_midi_bytes(data)) == [(60, 0.0, 1.0, 64)]


def test_rmid_wrapper_is_unwrapped():
    body = b"RMID" + b"data" + struct.pack("<I", len(VALID)) + VALID
    assert read_midi(b"RIFF" + struct.pack("<I", len(body)) + body).notes == read_midi(VALID).notes


def test_writer_output_reads_back_exactly():
    notes = [Note(60, 0.0, 1.0, 80), Note(64, 0.5, 0.25, 100), Note(67, 1 / 3, 2 / 3, 30)]
    data = midi_bytes([Track("a", notes[:2]), Track("b", notes[2:], channel=3)], bpm=100.0)
    content = read_midi(data)
    assert [(n.pitch, n.velocity) for n in content.notes] == [(60, 80), (67, 30), (64, 100)]
    assert [n.start for n in content.notes] == pytest.approx([0.0, 1 / 3, 0.5], abs=1e-3)
    assert content.bpm == 100.0


VALID = make_midi([tempo(0, 100), on(60, 0), off(60, 480), on(62, 480), off(62, 960), pedal(0, 127), pedal(960, 0)])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"hello, this is not MIDI at all", "not a MIDI file"),
        (VALID[:10], "truncated"),
        (VALID[:-3], "truncated"),
        (VALID[:14] + b"MTrX" + VALID[18:], "no MTrk header"),
        (b"MThd" + struct.pack(">IHHH", 6, 1, 0, 0), "0 ticks per beat"),
    ],
)
def test_bad_files_raise_one_line_conversion_errors(data, message):
    with pytest.raises(MIDIConversionError, match=message) as info:
        read_midi(data)
    assert "\n" not in str(info.value)


def test_every_truncation_and_random_damage_is_a_conversion_error_or_notes():
    # mido raises EOFError, OSError, ValueError, KeyError, IndexError, its own KeySignatureError...
    # the reader must turn every one of them into MIDIConversionError.
    samples = [VALID[:n] for n in range(len(VALID))]
    rng = random.Random(0)
    for _ in range(300):
        damaged = bytearray(VALID)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        samples.append(bytes(damaged))
    for data in samples:
        try:
            read_midi(data)
        except MIDIConversionError as exc:
            assert str(exc) and "\n" not in str(exc)


def test_read_midi_file_reports_missing_files(tmp_path):
    with pytest.raises(MIDIConversionError, match="cannot read"):
        read_midi_file(tmp_path / "absent.mid")
    path = tmp_path / "x.mid"
    path.write_bytes(VALID)
    assert read_midi_file(path).notes == read_midi(VALID).notes
