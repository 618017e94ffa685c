"""See it: MIDI read back per track (names, channels, programs, tempo map), the session's exchanges
from its markers, and the piano-roll picture of a recorded session and of any MIDI file (its
colours counted in the pixels), through `improv plot`."""

from __future__ import annotations

import io

import matplotlib.image
import mido
import numpy as np
import pytest

from improv.cli.main import main
from improv.music.midi import Track, midi_bytes, read_midi
from improv.music.notes import Note
from improv.realtime.report import Recorder
from improv.render.pianoroll import OTHER_COLOURS, SESSION_COLOURS, exchanges, piano_roll_png, seconds_of


def session_bytes(performer_channel: int = 0) -> bytes:
    """A recorded session of two exchanges, the tempo moving from 100 to 150 bpm, as the engine
    records it (markers at the call's first note and the answer's start)."""
    rec = Recorder()
    t = 0.0
    for number, (bpm, key) in enumerate(((100.0, "C major"), (150.0, "A minor")), start=1):
        rec.tempo(t, bpm, f"call {number}: {key}, {bpm:.0f} bpm")
        for i in range(4):
            rec.note_on("performer", performer_channel, 60 + i, 80, t + i * 0.5)
            rec.note_off("performer", performer_channel, 60 + i, t + i * 0.5 + 0.4)
        answer = t + 2.6
        rec.tempo(answer, bpm, f"answer {number} (folk)")
        for i in range(3):
            rec.note_on("improv", 0, 72 - i, 70, answer + i * 0.5)
            rec.note_off("improv", 0, 72 - i, answer + i * 0.5 + 0.4)
        t = answer + 2.0
    return rec.midi(100.0, programs=(0, 11))


def colour_pixels(png: bytes, colour: str, tolerance: float = 0.08) -> int:
    """How many pixels of the picture are (nearly) ``colour``, at full strength."""
    image = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return int(np.sum(np.all(np.abs(image - rgb) < tolerance, axis=-1)))


def test_a_recorded_session_reads_back_per_track_with_its_tempo_map():
    content = read_midi(session_bytes())
    performer, improv = content.parts
    assert (performer.name, len(performer.notes), performer.program) == ("performer", 8, 0)
    assert (improv.name, len(improv.notes), improv.program) == ("improv", 6, 11)
    # The performer played on improv's channel: the file moves them apart (one channel, one program).
    assert improv.channel == 0 and performer.channel == 1
    assert [bpm for _, bpm in content.tempi] == [100.0, 150.0]
    assert sum(len(p.notes) for p in content.parts) == len(content.notes)
    pans = {t.name: [m.value for m in t if m.type == "control_change" and m.control == 10] for t in mido.MidiFile(file=io.BytesIO(session_bytes())).tracks}
    assert pans["performer"][0] < 64 < pans["improv"][0]  # each on its own side


def test_a_performer_on_another_channel_keeps_it():
    performer, improv = read_midi(session_bytes(performer_channel=4)).parts
    assert (performer.channel, improv.channel) == (4, 0)


def test_a_type_0_file_is_drawn_per_channel_and_named_by_its_tracks():
    notes = [mido.Message("program_change", channel=0, program=40, time=0), mido.Message("program_change", channel=2, program=33, time=0)]
    for ch, pitch in ((0, 72), (2, 40)):
        notes += [mido.Message("note_on", channel=ch, note=pitch, velocity=90, time=0), mido.Message("note_off", channel=ch, note=pitch, time=480)]
    mid = mido.MidiFile(type=0)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="duo", time=0), *notes]))
    buffer = io.BytesIO()
    mid.save(file=buffer)
    parts = read_midi(buffer.getvalue()).parts
    assert [(p.name, p.channel, p.program, len(p.notes)) for p in parts] == [("duo ch. 1", 0, 40, 1), ("duo ch. 3", 2, 33, 1)]
    unnamed = read_midi(midi_bytes([Track("", [Note(60, 0, 1, 80)])], 120)).parts
    assert unnamed[0].name == "track 2"  # the tempo track is track 1


def test_seconds_follow_the_tempo_changes():
    to_s = seconds_of([(0.0, 60.0), (4.0, 120.0)])
    assert to_s([0, 2, 4, 6]).tolist() == pytest.approx([0, 2, 4, 5])
    assert seconds_of([])(4.0) == pytest.approx(2.0)  # 120 bpm: the MIDI default


def test_exchanges_come_from_the_markers():
    content = read_midi(session_bytes())
    found = exchanges(content.markers, seconds_of(content.tempi))
    assert [(e.number, e.key, e.bpm, e.voice) for e in found] == [(1, "C major", 100.0, "folk"), (2, "A minor", 150.0, "folk")]
    assert found[0].call_at == pytest.approx(0.0) and found[0].answer_at == pytest.approx(2.6, abs=0.01)
    assert found[1].call_at == pytest.approx(4.6, abs=0.01)  # seconds, through the tempo change


def test_the_session_picture_has_both_parts_in_their_colours():
    png = piano_roll_png(read_midi(session_bytes()), "session.mid")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    apart = np.subtract(matplotlib.colors.to_rgb(SESSION_COLOURS["performer"]), matplotlib.colors.to_rgb(SESSION_COLOURS["improv"]))
    assert np.abs(apart).max() > 0.4  # two colours a glance tells apart
    assert colour_pixels(png, SESSION_COLOURS["performer"]) > 200
    assert colour_pixels(png, SESSION_COLOURS["improv"]) > 150
    # Without an improv track it is any MIDI file: no session colours.
    other = piano_roll_png(read_midi(midi_bytes([Track("piano", [Note(60 + i, i, 1, 127) for i in range(8)])], 120)), "x")
    assert colour_pixels(other, SESSION_COLOURS["improv"]) == 0 and colour_pixels(other, OTHER_COLOURS[0]) > 200


def test_improv_plot_draws_any_midi_file_one_colour_per_track(tmp_path, capsys):
    tracks = [Track(f"t{i}", [Note(50 + 7 * i + j, j * 0.5, 0.5, 127) for j in range(8)], program=i, channel=i) for i in range(3)]
    midi = tmp_path / "three.mid"
    midi.write_bytes(midi_bytes(tracks, 90))
    assert main(["plot", str(midi)]) == 0
    assert capsys.readouterr().out == f"improv: drew {tmp_path / 'three.png'} (t0 8, t1 8, t2 8)\n"
    png = (tmp_path / "three.png").read_bytes()
    assert all(colour_pixels(png, OTHER_COLOURS[i]) > 100 for i in range(3))
    height, width = matplotlib.image.imread(io.BytesIO(png)).shape[:2]
    assert 700 <= width <= 2300 and 400 <= height <= 600  # readable, not a poster


def test_improv_plot_of_a_session_and_its_errors(tmp_path, capsys):
    midi = tmp_path / "s.mid"
    midi.write_bytes(session_bytes())
    assert main(["plot", str(midi), "--out", str(tmp_path / "pics" / "s.png")]) == 0
    assert (tmp_path / "pics" / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00")
    assert main(["plot", str(tmp_path / "bad.mid")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"improv: error: {tmp_path / 'bad.mid'}: ") and err.count("\n") == 1
    assert main(["plot", str(tmp_path / "none.mid")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["plot", str(midi), "--out", str(midi)]) == 2
    assert "would overwrite its MIDI file" in capsys.readouterr().err
    for folder in (tmp_path, "/"):  # no name to put .png on: was a ValueError traceback
        assert main(["plot", str(folder)]) == 2
        assert capsys.readouterr().err == f"improv: error: cannot read {folder}: Is a directory\n"
    empty = tmp_path / "empty.mid"
    empty.write_bytes(midi_bytes([Track("nothing", [])], 120))
    assert main(["plot", str(empty)]) == 0  # a picture that says so, not an error


def test_a_long_session_still_shows_both_parts():
    """An hour-long set in a picture at most 22 inches wide: every note at least a pixel and a half,
    the labels thinned out, both colours still there."""
    rec = Recorder()
    t = 0.0
    for n in range(1, 121):
        rec.tempo(t, 100.0, f"call {n}: C major, 100 bpm")
        for i in range(6):
            rec.note_on("performer", 0, 60 + i % 5, 127, t + i * 0.4)
            rec.note_off("performer", 0, 60 + i % 5, t + i * 0.4 + 0.3)
        rec.tempo(t + 3.0, 100.0, f"answer {n}")
        for i in range(6):
            rec.note_on("improv", 0, 70 - i % 4, 127, t + 3.0 + i * 0.4)
            rec.note_off("improv", 0, 70 - i % 4, t + 3.0 + i * 0.4 + 0.3)
        t += 6.0
    png = piano_roll_png(read_midi(rec.midi(100.0)), "long.mid")
    # ~21,000 pixels of each colour here; notes drawn 0.02 s wide or swamped by their edges: 7-12,000
    assert colour_pixels(png, SESSION_COLOURS["performer"]) > 15000 and colour_pixels(png, SESSION_COLOURS["improv"]) > 15000
    assert matplotlib.image.imread(io.BytesIO(png)).shape[1] <= 2200


def test_labels_of_a_crowded_session_neither_collide_nor_vanish(monkeypatch):
    """Exchanges far apart and a crowded run of short ones: each label as long as its own room
    allows (one close pair used to shrink every label to its number), every exchange keeps at
    least its number, and no two labels on a row overlap."""
    import matplotlib.axes

    rec = Recorder()
    t, gaps = 0.0, [12.0, 12.0, 1.0, 0.6, 0.6, 0.6, 0.6, 12.0, 12.0]
    for n, gap in enumerate(gaps, start=1):
        rec.tempo(t, 100.0, f"call {n}: C major, 100 bpm")
        rec.note_on("performer", 0, 60, 90, t)
        rec.note_off("performer", 0, 60, t + 0.2)
        rec.tempo(t + 0.3, 100.0, f"answer {n}")
        rec.note_on("improv", 0, 67, 90, t + 0.3)
        rec.note_off("improv", 0, 67, t + (0.5 if n < len(gaps) else gap))  # the last answer a long one
        t += gap
    drawn: list[tuple[float, float, str, int]] = []
    real_text = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        drawn.append((float(x), float(y), s, kwargs.get("fontsize", 10)))
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    piano_roll_png(read_midi(rec.midi(100.0)), "crowd.mid")
    calls = {int(s.split(":")[0]): s.strip() for _, y, s, size in drawn if size == 8 and s.strip()[:1].isdigit()}
    assert sorted(calls) == list(range(1, len(gaps) + 1)), calls  # none vanished
    assert calls[1] == calls[2].replace("2", "1") == "1: C major, 100 bpm"  # the roomy ones whole
    assert calls[9] == "9: C major, 100 bpm" and calls[5] == "5"
    # Calls and answers on different rows; the crowded calls spill onto the second calls' row.
    assert len({y for _, y, s, size in drawn if size == 8 and s.strip()[:1].isdigit()}) == 2


def test_label_layout_keeps_every_label_apart_on_its_row():
    from improv.render.labels import GAP_INCHES, place, width

    rng = np.random.default_rng(3)
    xs = np.cumsum(rng.choice([0.15, 0.3, 0.6, 2.0], 60))
    labels = [(float(x), [f" {n}: G minor, 88 bpm", f" {n}: G minor", f" {n}"]) for n, x in enumerate(xs, start=1)]
    placed = place(labels, rows=2, fontsize=8, right=float(xs[-1]) + 2)
    assert all(p.text for p in placed)  # none vanished: numbers fit two rows at this crowding (an hour in 22 inches: 0.18 inches a call)
    for row in (0, 1):
        on_row = sorted((p.start, p.end) for p in placed if p.row == row)
        assert all(end + GAP_INCHES <= start + 1e-9 for (_, end), (start, _) in zip(on_row, on_row[1:]))
    # Room enough: the whole label; and each label's end is its text's width.
    assert placed[-1].text == labels[-1][1][0] and all(p.end - p.start == pytest.approx(width(p.text, 8)) for p in placed)
