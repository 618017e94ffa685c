"""improv demo: phrases, the performer's plan, a whole session in simulated time, the command."""

from __future__ import annotations

import dataclasses
import json

import mido
import numpy as np
import pytest
from support.fakes import LadderModel
from support.models import write_random_model

from improv.cli.main import main
from improv.io.clock import FakeClock
from improv.music.notes import Note
from improv.session.demo import play_session
from improv.session.demo_plan import (
    Phrase,
    answer_start,
    call_messages,
    cut_phrase,
    plan_session,
)
from improv.settings.sections import DemoSettings, ModelSettings, SampleSettings, Settings
from improv.settings.serve_section import ServeSettings


def scale_phrase(bpm: float = 120.0, beats: int = 8, source: str = "test") -> Phrase:
    return Phrase(source, 0.0, tuple(Note(60 + i % 8, float(i), 1.0, 80) for i in range(beats)), bpm)


def test_cut_phrase_starts_on_a_bar_and_cuts_notes_at_the_end():
    notes = [Note(60, 0.0, 1, 64)] + [Note(62 + i % 5, 4.0 + i * 0.5, 2.0, 64) for i in range(16)]
    phrase = cut_phrase(notes, "w", 90.0, 4.0, np.random.default_rng(0), min_notes=6)
    assert phrase.start_beat in (4.0, 8.0)
    assert phrase.notes[0].start == 0.0 and phrase.beats <= 4.0
    assert all(n.end <= 4.0 + 1e-9 for n in phrase.notes)
    assert cut_phrase(notes[:3], "w", 90.0, 4.0, np.random.default_rng(0)) is None  # too few notes


def test_a_phrase_ends_before_a_rest_that_would_end_the_call():
    # Two bars of eighths, a two-beat rest, two more beats: with the rest inside it the performer's
    # call would be two calls to the engine (one of them unanswered).
    notes = [Note(60 + i % 5, 0.5 * i, 0.5, 80) for i in range(8)] + [Note(67, 6.0 + 0.5 * i, 0.5, 80) for i in range(4)]
    whole = cut_phrase(notes, "w", 120.0, 8.0, np.random.default_rng(0))
    assert len(whole.notes) == 12
    cut = cut_phrase(notes, "w", 120.0, 8.0, np.random.default_rng(0), max_rest_beats=1.0)
    assert len(cut.notes) == 8 and cut.beats == 4.0
    assert cut_phrase(notes, "w", 120.0, 8.0, np.random.default_rng(0), max_rest_beats=2.5).notes == whole.notes
    assert cut_phrase(notes, "w", 120.0, 8.0, np.random.default_rng(0), min_notes=9, max_rest_beats=1.0) is None


def test_the_demo_plays_as_many_exchanges_as_it_announces_calls(tmp_path, capsys):
    # Pieces with a rest as long as the call-ending silence in every window (and their own tempo).
    folder = tmp_path / "rests"
    folder.mkdir()
    from improv.music.midi import Track, midi_bytes

    for i in range(3):
        # every 8 beats: 3 beats of eighths, a 2-beat rest, 3 beats of eighths
        bars = [Note(60 + (k + i) % 7, 8.0 * b + 0.5 * k + (2.0 if k >= 6 else 0.0), 0.5, 80) for b in range(4) for k in range(12)]
        (folder / f"p{i}.mid").write_bytes(midi_bytes([Track("x", bars)], 132))
    ckpt = write_random_model(tmp_path / "m.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))
    code = main(["demo", "--fast", "--calls", "3", "--checkpoint", str(ckpt), "--record", str(tmp_path / "d.mid"), "--json", "--set", f"demo.source={folder}", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    result = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and result["calls"] == 3 and result["exchanges"] == 3, result


def test_the_last_answer_is_heard_to_its_end():
    # Answers of 40 events, far longer than the plan's guess (as long as the call): the session
    # ends when the last one has finished, not at the plan's end.
    demo = DemoSettings(barge_every=0, breath_beats=1.0)
    serve = ServeSettings(response_unit="events", response_length=40, estimate_tempo=False, keep_key=False, phrase_ending=False)
    result, tracks, sent = play_session(LadderModel(), [scale_phrase(source="a"), scale_phrase(source="b")], serve, demo, SampleSettings(), FakeClock(), seed=0)
    assert result["endings"] == ["barge-in", "finished"], result["endings"]  # the first is cut by the next call, as planned
    assert "shutdown" not in result["endings"]


def test_the_tempo_of_the_first_piece_is_labelled_as_the_pieces():
    lines: list[str] = []
    demo = DemoSettings(barge_every=0)
    serve = ServeSettings(estimate_tempo=False, keep_key=False)
    piece = dataclasses.replace(scale_phrase(bpm=132.0), bpm_source="piece")
    play_session(LadderModel(), [piece], serve, demo, SampleSettings(), FakeClock(), seed=0, on_status=lines.append)
    assert " · 132 bpm (piece) · " in lines[0], lines
    play_session(LadderModel(), [scale_phrase(bpm=88.0)], serve, demo, SampleSettings(), FakeClock(), seed=0, on_status=lines.append)
    assert " · 88 bpm (config) · " in lines[-1], lines


RELEASE = 4 - 0.004  # the last key of a 4 s phrase goes up 4 ms early (repeated keys strike anew)


def test_plan_waits_for_answers_and_barges_in_every_third_call():
    phrases = [scale_phrase()] * 4  # 8 beats at 120 bpm = 4 s each
    calls, end = plan_session(phrases, start=1.0, silence_s=0.5, barge_every=3, breath_beats=1.0)
    starts = [c.start for c in calls]
    # call, silence, answer (at once) as long as the call, a one-beat breath
    assert starts[0] == 1.0 and starts[1] == pytest.approx(1.0 + RELEASE + 0.5 + 4 + 0.5)
    assert starts[2] == pytest.approx(starts[1] + RELEASE + 5.0)
    assert starts[3] == pytest.approx(starts[2] + RELEASE + 0.5 + 2.0)  # halfway through the answer
    assert [c.barge_in for c in calls] == [False, False, False, True]
    assert end == pytest.approx(starts[3] + RELEASE + 5.0)


def test_plan_adds_the_wait_for_the_beat():
    phrases = [scale_phrase()] * 4  # beats every 0.5 s from each call's first note
    calls, end = plan_session(phrases, start=1.0, silence_s=0.6, barge_every=3, breath_beats=1.0, grid_beats=1.0)
    starts = [c.start for c in calls]
    # decided at 1.0 + 3.996 + 0.6 = 5.596: the answer waits for the beat at 6.0 (beat 10 of the call)
    assert answer_start(phrases[0], 1.0, 0.6, 1.0) == pytest.approx(6.0)
    assert starts[1] == pytest.approx(6.0 + 4 + 0.5)
    assert starts[2] == pytest.approx(starts[1] + 9.5)
    assert starts[3] == pytest.approx(starts[2] + 5.0 + 2.0)  # halfway through the answer
    assert end == pytest.approx(starts[3] + 9.5)
    # Half beats: 5.75. A phrase with a pickup (first note half a beat in) shifts the grid with it.
    assert answer_start(phrases[0], 1.0, 0.6, 0.5) == pytest.approx(5.75)
    pickup = Phrase("p", 0.0, tuple(Note(60, 0.5 + i, 1.0, 80) for i in range(7)), 120.0)
    assert answer_start(pickup, 1.0, 0.6, 1.0) == pytest.approx(5.75)  # decided at 5.346; beats at 1.25 + k/2
    # A decision exactly on a beat (to float noise) is on it: no extra beat of waiting.
    on_beat = Phrase("b", 0.0, (Note(60, 0.0, 1.0, 80), Note(62, 1.0, 1.008, 80)), 120.0)
    assert answer_start(on_beat, 1.0, 0.5, 1.0) == pytest.approx(1.0 + 1.5)


def test_call_messages_close_every_note_offs_first():
    calls, _ = plan_session([scale_phrase()], 0.0, 0.5, 0, 1.0)
    msgs = call_messages(calls[0], channel=1)
    assert sum(m.type == "note_on" for _, m in msgs) == sum(m.type == "note_off" for _, m in msgs) == 8
    assert all(m.channel == 1 for _, m in msgs)
    times = [t for t, _ in msgs]
    assert times == sorted(times)


def test_a_session_answers_every_call_and_barges_in():
    demo = DemoSettings(barge_every=2, breath_beats=1.0)
    phrases = [scale_phrase(source=f"w{i}") for i in range(3)]
    serve = ServeSettings(silence_ms=400.0, silence_beats=0.0, answer_lead_beats=0.0, phrase_ending=False, estimate_tempo=False, keep_key=False)  # answers on the beat
    clock = FakeClock()
    result, tracks, sent = play_session(LadderModel(), phrases, serve, demo, SampleSettings(), clock, seed=0)
    assert result["exchanges"] == 3 and result["answered"] == 3
    assert result["planned_barge_ins"] == 1 and result["barge_ins"] == 1
    # Each call: last release 3.996 s after its start, decided 0.4 s later, the beat 0.104 s after.
    assert result["answer_wait_ms_median"] == pytest.approx(104.0)
    assert result["response_overhead_ms_max"] == pytest.approx(0.0, abs=1e-6)
    assert result["first_note_after_threshold_ms_max"] == pytest.approx(104.0)
    # The performer's plan knew when each answer would start.
    calls, _ = plan_session(phrases, 0.5, 0.4, 2, 1.0, grid_beats=1.0)
    planned = [answer_start(c.phrase, c.start, 0.4, 1.0) for c in calls]
    improv_ons = [t for t, m in sent if m.type == "note_on" and m.velocity > 0]
    assert [t for t in improv_ons if any(abs(t - p) < 1e-9 for p in planned)] == pytest.approx(planned)
    assert [t.name for t in tracks] == ["performer", "improv"]
    assert len(tracks[0].notes) == 24 and len(tracks[1].notes) > 0
    sounding: set[tuple[int, int]] = set()
    for _, msg in sent:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_off", "note_on"):
            sounding.discard((msg.channel, msg.note))
    assert not sounding  # every note improv started was ended


def test_demo_command_fast(tmp_path, capsys):
    ckpt = write_random_model(tmp_path / "m.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))
    out = tmp_path / "demo.mid"
    code = main(["demo", "--fast", "--calls", "2", "--checkpoint", str(ckpt), "--record", str(out), "--json", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["answered"] else 1)  # an untrained model may stay silent; the session still runs
    assert result["calls"] == 2 and result["exchanges"] == 2 and result["performer_notes"] > 0
    assert all(s.startswith("music21:bach/") for s in result["sources"])
    mid = mido.MidiFile(out)
    names = [msg.name for track in mid.tracks for msg in track if msg.type == "track_name"]
    assert names == ["performer", "improv"]


def test_the_demo_plays_the_voices_own_held_out_pieces(tmp_path, capsys):
    # A folk voice's held-out tunes (tunes of an O'Neill's book, each read alone) and a user's file.
    midi = tmp_path / "mine.mid"
    from improv.music.midi import Track, midi_bytes

    midi.write_bytes(midi_bytes([Track("x", [Note(60 + k % 5, k * 0.5, 0.5, 80) for k in range(40)])], 100))
    heldout = [f"music21:oneills1850/0721-0730.abc#{n:02d}" for n in (2, 5, 9)] + [str(midi)]
    path = write_random_model(tmp_path / "folky.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1), info={"heldout": heldout})
    out = tmp_path / "demo.mid"
    code = main(["demo", "--fast", "--calls", "4", "--checkpoint", str(path), "--record", str(out), "--json", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    result = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and result["calls"] == 4
    assert sorted(result["sources"]) == sorted(heldout)  # each held-out piece once
    # demo.source names other music instead.
    main(["demo", "--fast", "--calls", "1", "--checkpoint", str(path), "--record", str(out), "--json", "--set", f"corpus.cache_dir={tmp_path / 'cache'}", "--set", "demo.source=music21:bach/bwv66.6"])
    assert json.loads(capsys.readouterr().out)["sources"] == ["music21:bach/bwv66.6.mxl"]


def test_one_tune_of_an_abc_book_is_read_as_the_whole_book_reads_it(tmp_path):
    from improv.music.scores import read_music21, read_music21_work

    book = tmp_path / "book.abc"  # reference numbers out of order: music21 orders the book by them
    tunes = {5: "cdef gabc'", 2: "CDEF GABc", 9: "edcB AGFE"}
    book.write_text("".join(f"X:{x}\nT:t{x}\nM:4/4\nL:1/8\nK:C\n{body}|\n\n" for x, body in tunes.items()))
    whole = {name: (notes, bpm, meter) for name, notes, bpm, meter in read_music21(str(book))}
    assert sorted(whole) == ["#1", "#2", "#3"]
    for name, expected in whole.items():
        assert read_music21_work(str(book), name) == expected
    assert whole["#1"][0][0].pitch == 60  # X:2, the lowest number, is the first work
    with pytest.raises(Exception, match="no work #4"):
        read_music21_work(str(book), "#4")


def test_demo_command_errors(tmp_path, capsys):
    assert main(["demo", "--fast", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["demo", "--fast", "--out", "synth"]) == 2
    assert capsys.readouterr().err.strip() == "improv: error: --out plays through a port in real time; drop --fast to hear it"
    assert main(["demo", "--calls", "0"]) == 2
    assert "bad value for demo.calls: 0" in capsys.readouterr().err


def test_demo_record_path_that_cannot_be_written_fails_before_playing(tmp_path, capsys, monkeypatch):
    from improv.session import demo as demo_session

    ckpt = write_random_model(tmp_path / "m.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))

    def played(*a, **kw):
        raise AssertionError("the session was played")

    monkeypatch.setattr(demo_session, "demo_phrases", played)
    assert main(["demo", "--fast", "--checkpoint", str(ckpt), "--record", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"improv: error: cannot write {tmp_path}: it is a folder\n"
    blocked = tmp_path / "m.pt" / "d.mid"  # a "folder" that is a file (as /proc/d.mid is not writable)
    assert main(["demo", "--fast", "--checkpoint", str(ckpt), "--record", str(blocked)]) == 2
    assert capsys.readouterr().err == f"improv: error: cannot write {blocked}: its folder does not exist\n"
    kept = tmp_path / "old.mid"
    kept.write_bytes(b"old")
    demo_session.check_writable(str(kept))  # writable: left as it was
    assert kept.read_bytes() == b"old"
    demo_session.check_writable(str(tmp_path / "new.mid"))
    assert not (tmp_path / "new.mid").exists()  # no empty file left behind by the check


class Interrupted(LadderModel):
    """A model whose 6th sample is a second Ctrl-C (it escapes the engine, as it should)."""

    def sample_event(self, *a, **kw):
        if self.samples == 5:
            raise KeyboardInterrupt
        return super().sample_event(*a, **kw)


def test_demo_writes_the_recording_when_the_session_ends_in_an_exception(tmp_path, monkeypatch):
    from improv.session import demo as demo_session

    class Loaded:
        tokenizer = None
        info: dict = {}

        @staticmethod
        def step_model():
            return Interrupted()

    monkeypatch.setattr(demo_session, "load_player", lambda path: Loaded())
    monkeypatch.setattr(demo_session, "demo_phrases", lambda *a: ([scale_phrase(source=f"w{i}") for i in range(3)], "scales"))
    record = tmp_path / "cut.mid"
    settings = Settings()
    with pytest.raises(KeyboardInterrupt):
        demo_session.run_demo(
            settings, settings.demo, settings.sample, checkpoint="m.pt", record=str(record),
            fast=True, out_port=None, api="", seed=0, quiet=True,
        )  # fmt: skip
    mid = mido.MidiFile(record)
    counts = {t.name: sum(m.type == "note_on" and m.velocity > 0 for m in t) for t in mid.tracks}
    assert counts["performer"] >= 8 and counts["improv"] >= 1  # what was played before it broke


def test_the_performers_plan_knows_when_the_engine_answers_with_the_default_rule():
    # The default start rule (a beat of silence, half a beat's breath, the next beat): the plan's
    # answer times are the engine's, so the planned barge-ins land where they are meant to.
    demo = DemoSettings(barge_every=0, breath_beats=1.0)
    phrases = [scale_phrase(bpm=90.0, source=f"w{i}") for i in range(2)]
    serve = ServeSettings(estimate_tempo=False, keep_key=False, phrase_ending=False)
    result, tracks, sent = play_session(LadderModel(), phrases, serve, demo, SampleSettings(), FakeClock(), seed=0)
    assert result["answered"] == 2 and result["barge_ins"] == 0
    ons = sorted(t for t, m in sent if m.type == "note_on" and m.velocity > 0)
    calls, _ = plan_session(phrases, 0.5, 60 / 90, 0, 1.0, 1.0, 0.5)
    assert ons[0] == pytest.approx(answer_start(phrases[0], calls[0].start, 60 / 90, 1.0, 0.5))


def test_demo_leaves_its_picture_and_its_sound_beside_the_file(tmp_path, capsys):
    from improv.render.fluidsynth import find_fluidsynth
    from improv.render.soundfont import NoSoundFont, find_soundfont

    ckpt = write_random_model(tmp_path / "m.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))
    out = tmp_path / "demo.mid"
    main(["demo", "--fast", "--calls", "1", "--checkpoint", str(ckpt), "--record", str(out), "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    said = capsys.readouterr().out
    tracks = {t.name: t for t in mido.MidiFile(out).tracks[1:]}
    programs = {name: [(m.channel, m.program) for m in t if m.type == "program_change"] for name, t in tracks.items()}
    settings = Settings()
    # Two instruments on two channels: the parts are heard apart.
    assert programs == {"performer": [(settings.demo.performer_channel - 1, settings.serve.performer_program)], "improv": [(settings.serve.channel - 1, settings.serve.program)]}
    assert settings.serve.performer_program != settings.serve.program
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG" and f"see it: {tmp_path / 'demo.png'}" in said
    try:
        ready = find_fluidsynth() is not None and find_soundfont() is not None
    except NoSoundFont:
        ready = False
    if ready:
        assert (tmp_path / "demo.wav").read_bytes()[:4] == b"RIFF" and f"hear it: {tmp_path / 'demo.wav'}" in said
    else:
        assert "improv demo: no demo.wav: " in said


def test_demo_without_a_synth_still_succeeds_and_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    import improv.render.fluidsynth as synth

    monkeypatch.setattr(synth, "find_fluidsynth", lambda: None)
    monkeypatch.setattr("sys.platform", "linux")
    ckpt = write_random_model(tmp_path / "m.npz", ModelSettings(embed_dim=8, hidden_size=16, num_layers=1))
    out = tmp_path / "demo.mid"
    code = main(["demo", "--fast", "--calls", "1", "--checkpoint", str(ckpt), "--record", str(out), "--json", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    result = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and out.exists() and result["audio"] is None and result["picture"] == str(tmp_path / "demo.png")
    assert not (tmp_path / "demo.wav").exists()
    main(["demo", "--fast", "--calls", "1", "--checkpoint", str(ckpt), "--record", str(out), "--set", f"corpus.cache_dir={tmp_path / 'cache'}"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "demo.wav" in line]
    assert lines == ["improv demo: no demo.wav: FluidSynth is not installed: sudo apt install fluidsynth fluid-soundfont-gm (Debian/Ubuntu; Fedora: dnf install fluidsynth fluid-soundfont-gm)"]


def test_the_monitor_flags_need_real_time_and_each_other(capsys):
    assert main(["demo", "--fast", "--monitor"]) == 2
    assert capsys.readouterr().err.strip() == "improv: error: --monitor shows the session in real time; drop --fast to watch it"
    assert main(["demo", "--monitor-host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.strip() == "improv: error: --monitor-host needs --monitor"


def test_the_demo_session_shows_itself_on_the_live_page(tmp_path, monkeypatch):
    """play_session wires the monitor into its loop: the page's feed gets both parts and the lines."""
    from improv.monitor.live import LiveMonitor

    monitor = LiveMonitor("127.0.0.1", 0)
    try:
        settings = Settings()
        result, _, _ = play_session(
            LadderModel(), [scale_phrase(source=f"w{i}") for i in range(2)], settings.serve, settings.demo,
            SampleSettings(), FakeClock(), 0, monitor=monitor, voice_label="ladder",
        )  # fmt: skip
        _, past = monitor.hub.start()  # what a page that connects now gets, as JSON
        events = json.loads(b"[" + past + b"]")
    finally:
        monitor.close()
    who = {e["who"] for e in events if e["type"] == "note"}
    assert who == {"performer", "improv"} and result["exchanges"] == 2
    assert sum(e["type"] == "status" and e["line"].startswith("#") for e in events) == 2
    assert monitor.hub.info["voices"] == ["ladder"]


def test_an_answer_cancelled_before_its_first_note_is_not_called_a_barge_in():
    from improv.realtime.report import Exchange

    base = dict(number=2, end_reason="silence", call_notes=5, call_beats=2.4, bpm=71.0, tempo_source="estimate", key="", decided_at=1.0, threshold_s=0.845)
    never = Exchange(**base, ended="barge-in", response_notes=0).status_line()
    assert "(barge-in)" not in never and never.endswith("answer 0 notes (not begun: the next call came first)"), never
    heard = Exchange(**base, ended="barge-in", response_notes=7, first_note_at=1.5).status_line()
    assert heard.endswith("answer 7 notes (barge-in)"), heard
