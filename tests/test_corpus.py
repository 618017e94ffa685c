"""The corpus pipeline: the music21 reader, both readers agreeing, sources, workers, time limits, cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from improv.corpus import cache as corpus_mod
from improv.corpus import load as corpus_load
from improv.corpus import pool as workers
from improv.corpus import reader as file_reader
from improv.corpus.load import load_corpus
from improv.corpus.sources import (
    ANALYSIS_REASON,
    music21_corpus_dir,
    music21_works,
    resolve_sources,
)
from improv.errors import ImprovError
from improv.music.midi import Track, midi_bytes, read_midi
from improv.music.notes import Note, canonical_order, note_array
from improv.music.scores import notes_from_music21, read_music21
from improv.music.tokenizer import BOS, EOS, Tokenizer
from improv.settings.sections import CorpusSettings, TokenizerSettings

TOK = Tokenizer()
M21 = music21_corpus_dir().parent  # the music21 package folder
# music21's own MIDI test files, less the three that take music21 seconds to import.
SLOW = {"test04.mid", "test09.mid", "k525MIDIMvt1.mid"}
M21_MIDI = sorted(p for p in [*M21.glob("midi/testPrimitive/*.mid"), *M21.glob("omr/*.mid")] if p.name not in SLOW)
# music21 10.5's MIDI import gives a few notes a different length (it pairs some note-offs with the
# wrong note_on: test13's C4 gets the length of an earlier C4); pitches, onsets and velocities agree.
M21_DURATION_QUIRKS = {"test13.mid", "test17.mid"}

FORK = sys.platform.startswith("linux")  # workers inherit the monkeypatches below only when forked


def settings(tmp_path: Path, **changes) -> CorpusSettings:
    return CorpusSettings(cache_dir=str(tmp_path / "cache"), workers=2, **changes)


def phrase(shift: int = 0, n: int = 12) -> list[Note]:
    return [Note(60 + (i * 5 + shift) % 24, i * 0.5 + (i % 3) / 3, 0.5, 40 + 7 * i % 80) for i in range(n)]


def write_midi(path: Path, notes: list[Note]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(midi_bytes([Track("t", notes)], bpm=110.0))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Four good MIDI files (one in a subfolder, one .MID) and four bad ones."""
    root = tmp_path / "songs"
    write_midi(root / "a.mid", phrase(0))
    write_midi(root / "b.midi", phrase(3, 20))
    write_midi(root / "sub" / "c.mid", phrase(7, 5))
    write_midi(root / "D.MID", phrase(1, 9))
    (root / "empty.mid").write_bytes(b"")
    (root / "text.mid").write_text("not midi")
    (root / "cut.mid").write_bytes((root / "a.mid").read_bytes()[:40])
    drums = midi_bytes([Track("kit", [Note(36, 0.0, 1.0, 100)], channel=9)], bpm=100.0)
    (root / "drums.mid").write_bytes(drums)
    (root / "notes.txt").write_text("ignored: not a MIDI or score file")
    (root / ".hidden.mid").write_bytes(b"junk")
    return root


def keyed(notes):
    return [(n.pitch, round(n.start, 6), round(n.duration, 6), n.velocity) for n in canonical_order(notes)]


# ---- the two readers ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore")  # music21 warns about undecodable lyrics and track names
@pytest.mark.parametrize("path", M21_MIDI, ids=lambda p: p.name)
def test_mido_and_music21_readers_agree_on_music21_midi_files(path):
    from music21 import converter

    ours = read_midi(path.read_bytes(), sustain=False)  # music21 ignores the pedal
    theirs = notes_from_music21(converter.parse(path, quantizePost=False, forceSource=True))
    a, b = keyed(ours.notes), keyed(theirs)
    assert [(p, s, v) for p, s, _, v in a] == [(p, s, v) for p, s, _, v in b]
    if path.name not in M21_DURATION_QUIRKS:
        assert a == b
        assert np.array_equal(TOK.encode(ours.notes), TOK.encode(theirs))


def test_music21_reader_ties_chords_grace_percussion_and_dynamics():
    from music21 import chord, dynamics, instrument, note, percussion, stream, tie

    score = stream.Score()
    voice = stream.Part()
    voice.insert(0, dynamics.Dynamic("p"))
    first, second = note.Note("C4", quarterLength=1), note.Note("C4", quarterLength=1)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    voice.insert(0, first)
    voice.insert(1, second)
    voice.insert(2, chord.Chord(["E3", "G5"], quarterLength=2))
    voice.insert(4, dynamics.Dynamic("f"))
    voice.insert(4, note.Note("D4").getGrace())
    voice.insert(4, note.Note("E4", quarterLength=1))
    plain = stream.Part([note.Note("A4", quarterLength=3)])
    kit = stream.Part()
    kit.insert(0, instrument.BassDrum())
    kit.insert(0, note.Unpitched(displayName="C4"))
    kit.insert(1, percussion.PercussionChord([note.Unpitched(displayName="D4"), note.Unpitched(displayName="E4")]))
    for part in (voice, plain, kit):
        score.insert(0, part)
    got = keyed(notes_from_music21(score))
    soft, loud = got[0][3], got[-1][3]
    assert [(p, s, d) for p, s, d, _ in got] == [(60, 0.0, 2.0), (69, 0.0, 3.0), (52, 2.0, 2.0), (79, 2.0, 2.0), (64, 4.0, 1.0)]
    assert soft < 90 < loud  # p and f as music21 realizes them; no dynamics at all -> 90
    assert got[1][3] == 90


def test_tie_joining_matches_strip_ties_on_chorales():
    from music21 import converter

    for work in ["bwv66.6", "bwv1.6", "bwv10.7"]:
        score = converter.parse(music21_works(work)[0].path, forceSource=True)
        ours = notes_from_music21(score)
        stripped = score.stripTies()
        reference = [
            (n.pitch.midi, float(n.getOffsetInHierarchy(stripped)), float(n.quarterLength))
            for n in stripped.recurse().notes
            for n in (n.notes if n.isChord else [n])
        ]
        assert sorted((n.pitch, n.start, n.duration) for n in ours) == sorted(reference)


def test_abc_collection_gives_one_piece_per_tune(tmp_path):
    book = tmp_path / "book.abc"
    book.write_text(
        "X:1\nT:One\nM:4/4\nL:1/4\nK:C\nCDEF|G4|]\n\n"
        "X:2\nT:Two\nM:3/4\nL:1/4\nK:G\nGAB|d3|]\n"
    )
    works = read_music21(str(book))
    assert [suffix for suffix, _, _, _ in works] == ["#1", "#2"]
    assert [n.pitch for n in works[0][1]] == [60, 62, 64, 65, 67]
    assert [meter for _, _, _, meter in works] == [(4, 4), (3, 4)]
    pieces, report = load_corpus([str(book)], TOK, settings(tmp_path))
    assert [p.name for p in pieces] == [f"{book}#1", f"{book}#2"] and report.parsed == 1 and report.pieces == 2
    assert [p.beats_per_bar for p in pieces] == [4.0, 3.0] and {p.source for p in pieces} == {str(book)}


def test_unreadable_score_is_skipped_with_music21s_reason(tmp_path):
    bad = tmp_path / "broken.musicxml"
    bad.write_text("<score-partwise><part id='P1'><measure")
    _, report = load_corpus([str(bad)], TOK, settings(tmp_path))
    assert report.parsed == 0 and report.skipped[0].reason.startswith("music21 cannot read it")


# ---- sources --------------------------------------------------------------------------------


def test_music21_names_resolve_without_importing_music21():
    code = (
        "import sys; from improv.corpus.sources import music21_works;"
        "w = music21_works('bach'); assert len(w) > 400, len(w);"
        "assert 'music21' not in sys.modules, 'music21 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_music21_name_forms():
    bach = music21_works("bach")
    names = [f.name for f in bach]
    assert "music21:bach/bwv66.6.mxl" in names and len(names) == len(set(names))
    assert "music21:bach/bwv277.mxl" in names and "music21:bach/bwv277.krn" not in names  # one format per work
    assert sum(n.endswith(".rntxt") for n in names) == 20
    assert [f.name for f in music21_works("bach/bwv66.6")] == ["music21:bach/bwv66.6.mxl"]
    assert [f.name for f in music21_works("BWV66.6")] == ["music21:bach/bwv66.6.mxl"]
    movements = music21_works("beethoven/opus18no1")
    assert len(movements) == 4 and all(f.name.endswith(".mxl") for f in movements)
    assert len(music21_works("essenFolksong")) == 31


def test_unknown_music21_name_says_what_exists():
    with pytest.raises(ImprovError) as info:
        music21_works("bahc")
    message = str(info.value)
    assert "did you mean music21:bach?" in message and "essenFolksong" in message and "\n" not in message


def test_missing_and_empty_sources_are_one_line_errors(tmp_path):
    with pytest.raises(ImprovError, match="no such file or folder: .*nowhere"):
        resolve_sources([str(tmp_path / "nowhere")])
    write_midi(tmp_path / "song.mid", phrase())
    with pytest.raises(ImprovError, match=r"no such file or folder: .*sogn.mid \(did you mean .*song.mid\?\)"):
        resolve_sources([str(tmp_path / "sogn.mid")])
    with pytest.raises(ImprovError, match=r"missing.*does not exist either"):
        resolve_sources([str(tmp_path / "missing" / "a.mid")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImprovError, match="no MIDI or score files under"):
        resolve_sources([str(tmp_path / "empty")])


def test_folder_is_searched_recursively_and_files_are_named_as_given(folder):
    names = [f.name for f in resolve_sources([str(folder), str(folder / "a.mid")])]
    assert names == sorted(names) and len(names) == 8  # a.mid once; notes.txt and .hidden.mid left out
    assert f"{folder}/sub/c.mid" in names and f"{folder}/D.MID" in names


# ---- load_corpus ----------------------------------------------------------------------------


def test_load_corpus_parses_good_files_and_skips_bad_ones_with_reasons(folder, tmp_path):
    pieces, report = load_corpus([str(folder)], TOK, settings(tmp_path), measure_recall=True)
    assert (report.files, report.parsed, report.cached) == (8, 4, 0)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons["empty.mid"].startswith("empty file")
    assert reasons["text.mid"].startswith("not a MIDI file")
    assert reasons["cut.mid"].startswith("truncated")
    assert reasons["drums.mid"].startswith("no pitched notes")
    assert [p.name for p in pieces] == sorted(p.name for p in pieces)
    for piece in pieces:
        assert piece.tokens.dtype == np.uint8 and piece.tokens.shape[1] == 4
        assert piece.tokens[0, 0] == BOS and piece.tokens[-1, 0] == EOS
        assert piece.bpm == 110.0
    assert report.events == 12 + 20 + 5 + 9 == sum(len(p.tokens) - 2 for p in pieces)
    assert report.roundtrip_recall == 1.0 and report.notes_total == report.events
    assert report.bytes_per_event == pytest.approx(4 * (report.events + 8) / report.events)
    decoded = TOK.decode(next(p for p in pieces if p.name.endswith("/a.mid")).tokens)
    assert [(n.pitch, n.start) for n in decoded] == [(n.pitch, pytest.approx(n.start)) for n in canonical_order(phrase(0))]


def test_order_and_tokens_do_not_depend_on_worker_count(folder, tmp_path):
    one, _ = load_corpus([str(folder)], TOK, CorpusSettings(cache=False, workers=1))
    three, report = load_corpus([str(folder)], TOK, CorpusSettings(cache=False, workers=3))
    assert report.workers == 3 and report.cache_dir is None
    assert [p.name for p in one] == [p.name for p in three]
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(one, three))


def test_analysis_files_are_skipped_with_a_reason(tmp_path):
    pieces, report = load_corpus(["music21:bach/choraleAnalyses/riemenschneider001"], TOK, settings(tmp_path))
    assert pieces == [] and report.skipped[0].reason == ANALYSIS_REASON


def test_music21_work_loads(tmp_path):
    pieces, report = load_corpus(["music21:bach/bwv66.6"], TOK, settings(tmp_path), measure_recall=True)
    assert [p.name for p in pieces] == ["music21:bach/bwv66.6.mxl"]
    notes = read_music21(str(music21_works("bach/bwv66.6")[0].path))[0][1]
    assert len(notes) == 163 and report.events == len(canonical_order(notes)) == 154  # ties joined, unisons merged
    assert report.roundtrip_recall == 1.0 and pieces[0].bpm == 96.0


# ---- time limits and crashes (workers are forked, so they see the monkeypatched reader) ------
#
# No wall-time assertions (timing belongs in benchmarks/), and no race between the two limits: the
# CPU-time alarm is tested with a wall-time guard too long to ever come first, the guard with a
# parser that sleeps forever (it uses no CPU, so only the guard can stop it).


def _misbehaving_reader(path, kind, data):
    name = Path(path).name
    if name.startswith("spin"):  # an endless loop: the worker's CPU-time alarm stops it
        while True:
            pass
    if name.startswith("hang"):  # waits without using the CPU: only the pool's wall-time guard can stop it
        while True:
            time.sleep(3600)
    if name.startswith("slow"):  # parses slowly on a loaded machine: a little CPU at a time, long in wall time
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            busy = time.process_time() + 0.02
            while time.process_time() < busy:
                pass
            time.sleep(0.1)
    if name.startswith("deafspin"):  # an endless loop the CPU alarm cannot reach (as inside C code)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        while True:
            pass
    if name.startswith("crash"):
        os._exit(7)
    if name.startswith("bug"):
        raise ZeroDivisionError("a bug in a reader")
    return [file_reader.Work("", note_array(read_midi(data).notes), 120.0, None)]


def _songs(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        write_midi(root / name, phrase(i))  # each its own content: its own cache entry
    return root


@pytest.mark.skipif(not FORK, reason="needs forked workers to see the monkeypatch")
def test_spinning_crashing_and_buggy_files_are_skipped_and_the_rest_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(file_reader, "read_works", _misbehaving_reader)
    monkeypatch.setattr(workers, "GUARD_FACTOR", 10_000.0)  # the guard never comes first, however loaded the machine
    root = _songs(tmp_path / "songs", ["spin.mid", "crash.mid", "bug.mid", "ok1.mid", "ok2.mid", "ok3.mid"])
    pieces, report = load_corpus([str(root)], TOK, settings(tmp_path, file_timeout_s=0.5))
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert sorted(p.name.rsplit("/", 1)[1] for p in pieces) == ["ok1.mid", "ok2.mid", "ok3.mid"]
    assert reasons["spin.mid"] == "took more than 0.5 s of CPU time to parse (corpus.file_timeout_s)"
    assert reasons["crash.mid"] == "its parser process died (exit status 7)"
    assert reasons["bug.mid"] == "reader failed (ZeroDivisionError: a bug in a reader)"
    # Time-outs and crashes are not cached (the next run tries again); the bug's reason is.
    _, again = load_corpus([str(root)], TOK, settings(tmp_path, file_timeout_s=0.5))
    assert again.cached == 4


@pytest.mark.skipif(not FORK, reason="needs forked workers to see the monkeypatch")
def test_a_parser_stuck_without_using_the_cpu_is_stopped_by_the_wall_time_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(file_reader, "read_works", _misbehaving_reader)
    root = _songs(tmp_path / "songs", ["hang.mid", "ok1.mid", "ok2.mid"])
    pieces, report = load_corpus([str(root)], TOK, settings(tmp_path, file_timeout_s=0.5))
    assert [s.reason for s in report.skipped] == [f"its parser was stuck for {workers.GUARD_FACTOR * 0.5 + 2.0:g} s and was stopped"]
    assert sorted(p.name.rsplit("/", 1)[1] for p in pieces) == ["ok1.mid", "ok2.mid"]
    assert len(list((tmp_path / "cache").glob("*.corpus"))) == 2  # a stuck parse is not cached: the next run tries again


@pytest.mark.skipif(not FORK or not Path("/proc/self/stat").exists(), reason="needs forked workers and /proc (the guard reads a worker's CPU time there)")
def test_a_slow_parser_still_using_the_cpu_is_not_stopped_by_the_wall_time_guard(tmp_path, monkeypatch):
    # On a loaded machine a parse takes many times its CPU time; skipping it for that made which
    # pieces a corpus holds depend on the machine's load.
    monkeypatch.setattr(file_reader, "read_works", _misbehaving_reader)
    monkeypatch.setattr(workers, "GUARD_FACTOR", 0.0)  # a span of 2 s of wall time; the parse takes 4 s
    root = _songs(tmp_path / "songs", ["slow.mid", "ok1.mid"])
    pieces, report = load_corpus([str(root)], TOK, settings(tmp_path, file_timeout_s=3.0))
    assert report.skipped == []
    assert sorted(p.name.rsplit("/", 1)[1] for p in pieces) == ["ok1.mid", "slow.mid"]


@pytest.mark.skipif(not FORK or not Path("/proc/self/stat").exists(), reason="needs forked workers and /proc (the guard reads a worker's CPU time there)")
def test_a_parser_spinning_out_of_the_alarms_reach_is_stopped_by_the_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(file_reader, "read_works", _misbehaving_reader)
    monkeypatch.setattr(workers, "GUARD_FACTOR", 0.0)
    root = _songs(tmp_path / "songs", ["deafspin.mid", "ok1.mid"])
    pieces, report = load_corpus([str(root)], TOK, settings(tmp_path, file_timeout_s=0.2))
    assert [Path(s.path).name for s in report.skipped] == ["deafspin.mid"]
    assert "stuck" in report.skipped[0].reason
    assert sorted(p.name.rsplit("/", 1)[1] for p in pieces) == ["ok1.mid"]


# ---- cache ----------------------------------------------------------------------------------


def test_second_run_comes_from_the_cache_and_matches(folder, tmp_path):
    first, r1 = load_corpus([str(folder)], TOK, settings(tmp_path), measure_recall=True)
    second, r2 = load_corpus([str(folder)], TOK, settings(tmp_path), measure_recall=True)
    assert r1.cached == 0 and r2.cached == 8 and r2.workers == 0  # skip reasons are cached too
    assert [p.name for p in first] == [p.name for p in second]
    assert all(np.array_equal(a.tokens, b.tokens) and a.bpm == b.bpm for a, b in zip(first, second))
    assert r2.skipped == r1.skipped and r2.roundtrip_recall == r1.roundtrip_recall
    second[0].tokens[1, 0] = 61  # cached rows are ordinary writable arrays


def test_changed_file_is_parsed_again(folder, tmp_path):
    load_corpus([str(folder)], TOK, settings(tmp_path))
    write_midi(folder / "a.mid", phrase(5, 3))
    write_midi(folder / "text.mid", phrase(9))  # a bad file, now fixed
    pieces, report = load_corpus([str(folder)], TOK, settings(tmp_path))
    assert report.cached == 6 and report.parsed == 5
    a = next(p for p in pieces if p.name.endswith("/a.mid"))
    assert len(a.tokens) == 3 + 2


def test_changed_tokenizer_setting_reencodes_the_cached_notes_without_parsing(folder, tmp_path, monkeypatch):
    load_corpus([str(folder)], TOK, settings(tmp_path))
    monkeypatch.setattr(corpus_load, "run_jobs", lambda *a, **k: pytest.fail("parsed again"))
    coarse = Tokenizer(TokenizerSettings(velocity_bins=4))
    pieces, report = load_corpus([str(folder)], coarse, settings(tmp_path))
    assert report.cached == 8 and report.workers == 0
    assert max(int(p.tokens[:, 3].max()) for p in pieces) < 4
    again, _ = load_corpus([str(folder)], TOK, settings(tmp_path))  # and back: the same tokens as a fresh parse
    monkeypatch.undo()
    fresh, _ = load_corpus([str(folder)], TOK, CorpusSettings(cache=False, workers=1))
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(again, fresh))


def test_corrupt_cache_entries_are_ignored_and_rebuilt(folder, tmp_path):
    first, _ = load_corpus([str(folder)], TOK, settings(tmp_path))
    entries = sorted((tmp_path / "cache").glob("*.corpus"))
    assert len(entries) == 8
    entries[0].write_bytes(b"garbage")
    blob = bytearray(entries[1].read_bytes())
    blob[-1] ^= 0xFF  # one flipped bit in the tokens: the checksum catches it
    entries[1].write_bytes(bytes(blob))
    entries[2].write_bytes(entries[2].read_bytes()[:-4])
    second, report = load_corpus([str(folder)], TOK, settings(tmp_path))
    assert report.cached == 5
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(first, second))
    third, report = load_corpus([str(folder)], TOK, settings(tmp_path))
    assert report.cached == 8  # rebuilt
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_recall_is_measured_when_a_cached_entry_lacks_it(folder, tmp_path):
    _, r1 = load_corpus([str(folder)], TOK, settings(tmp_path))
    assert r1.roundtrip_recall is None
    _, r2 = load_corpus([str(folder)], TOK, settings(tmp_path), measure_recall=True)
    assert r2.cached == 8 and r2.workers == 0 and r2.roundtrip_recall == 1.0  # measured on the cached notes: no parse
    _, r3 = load_corpus([str(folder)], TOK, settings(tmp_path), measure_recall=True)
    assert r3.cached == 8


def test_cache_off_writes_nothing(folder, tmp_path):
    _, report = load_corpus([str(folder)], TOK, settings(tmp_path, cache=False))
    _, report = load_corpus([str(folder)], TOK, settings(tmp_path, cache=False))
    assert report.cached == 0 and report.cache_dir is None and not (tmp_path / "cache").exists()


def test_default_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus_mod.default_cache_dir() == tmp_path / "xdg" / "improv" / "corpus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpus_mod.default_cache_dir() == tmp_path / "home" / ".cache" / "improv" / "corpus"


def test_skipped_files_are_grouped_by_reason_for_the_training_log():
    from improv.corpus.load import Skipped, skipped_lines

    skipped = [Skipped("a.rntxt", "an analysis"), Skipped("bad.mid", "not a MIDI file"), Skipped("b.rntxt", "an analysis")]
    assert skipped_lines(skipped) == ["2 files, e.g. a.rntxt: an analysis", "bad.mid: not a MIDI file"]
    many = [Skipped(f"f{i}.mid", f"reason {i}") for i in range(5)]
    assert skipped_lines(many, limit=3)[-1] == "... and 2 more files (`improv corpus` lists every one)"
    assert skipped_lines([]) == []
