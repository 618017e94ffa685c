"""`improv corpus`: the JSON object, the summary, the default source and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from improv.cli.main import main
from improv.music.midi import Track, midi_bytes
from improv.music.notes import Note


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    root = tmp_path / "songs"
    root.mkdir()
    for i in range(3):
        notes = [Note(60 + i + k, k * 0.25, 0.25, 70) for k in range(8)]
        (root / f"s{i}.mid").write_bytes(midi_bytes([Track("t", notes)], bpm=90.0))
    (root / "bad.mid").write_bytes(b"MThd\x00\x00")
    return root


def run_json(capsys, *argv: str) -> dict:
    assert main(["corpus", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_shape(songs, tmp_path, capsys):
    out = run_json(capsys, str(songs), "--cache", str(tmp_path / "c"), "--workers", "1")
    assert {"files", "parsed", "skipped", "events", "roundtrip_recall", "seconds", "cached"} <= set(out)
    assert (out["files"], out["parsed"], out["events"], out["cached"]) == (4, 3, 24, 0)
    assert out["skipped"] == [{"path": f"{songs}/bad.mid", "reason": "truncated MIDI file (it ends inside a chunk)"}]
    assert out["roundtrip_recall"] == 1.0 and out["events_per_file"] == 8.0 and out["bytes_per_event"] == 5.0
    again = run_json(capsys, str(songs), "--cache", str(tmp_path / "c"))
    assert again["cached"] == 4 and again["events"] == 24


def test_summary_lists_counts_recall_and_skips(songs, tmp_path, capsys):
    assert main(["corpus", str(songs), "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "4: 3 parsed, 1 skipped" in out and "recall    1.0000" in out
    assert f"{songs}/bad.mid: truncated MIDI file" in out


def test_default_source_is_the_training_data(songs, tmp_path, capsys):
    out = run_json(capsys, "--no-cache", "--set", f"train.data=[{songs / 's0.mid'}]")
    assert out["files"] == 1 and out["cache_dir"] is None


def test_unknown_sources_are_one_line_errors(tmp_path, capsys):
    assert main(["corpus", "music21:nobody", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("improv: error: music21's corpus has no composer, collection or work 'nobody'")
    assert err.count("\n") == 1
    assert main(["corpus", str(tmp_path / "missing.mid")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_bad_worker_count_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["corpus", "--workers", "-1"])
    assert "must be >= 0" in capsys.readouterr().err


def test_nothing_parsed_exits_1(tmp_path, capsys):
    (tmp_path / "x.mid").write_bytes(b"junk")
    assert main(["corpus", str(tmp_path / "x.mid"), "--no-cache"]) == 1
    assert "not a MIDI file" in capsys.readouterr().out
