"""Accompaniment over JACK (issue 20): a held-out chorale soprano at 80 bpm played into `improv
serve --mode accompany`; improv plays under it, on the beat, never stopping for the performer's
notes, every note closed. The grid figures (median, p90) are measured in
``benchmarks/bench_accompany.py``; here the bounds are a quarter of a beat, which no loaded
machine reaches but an accompaniment off the beat or waiting for the phrase's end would."""

from __future__ import annotations

import numpy as np
import pytest
from support.accompany_jack import accompany_over_jack
from support.jack_server import running_jack
from support.serve_process import NO_PROBE, assert_closed, assert_closed_at_the_end, tally_in, tiny_checkpoint_file

from improv.evaluation.accompany import harmony_ratio

pytestmark = [pytest.mark.jack, pytest.mark.slow]


@pytest.fixture(scope="module")
def jack():
    yield from running_jack()


def test_a_chorale_soprano_is_accompanied_on_the_beat_over_jack(jack, tmp_path):
    """Where the band stops is judged on improv's own record (``--record``: what it heard, what it
    played, one clock), not against when this process sent the last key: a loaded machine can
    deliver that key late, or an xrun drop its note-off for good (the cause of this test's
    failures in loaded CI runs: the band kept time for the held key). ``hold_bars`` 1 makes a
    lost note-off end the band a bar after the last key heard, as a key-up does."""
    run = accompany_over_jack(jack, tiny_checkpoint_file(tmp_path), beats=12.0, bpm=80.0, record=tmp_path / "session.mid", extra=("--set", "serve.hold_bars=1", *NO_PROBE))
    assert run.exit_code == 0, run.lines
    assert_closed(run.got, tally_in(run.lines))  # every note closed, All Notes Off: as far as JACK delivered
    last_key = max(off for _, off, _ in run.melody)
    during = [on for on, _, _ in run.improv if on < last_key]
    assert len(during) >= 12, run.lines  # it played while the performer played: no barge-in, no waiting
    heard, played = run.recorded["performer"], run.recorded["improv"]
    for on, _, p in played:  # under the melody as improv heard it (its record: a key JACK dropped was never
        # heard): below the lowest note played so far (the note on its own beat: not known yet)
        assert p < min(q for t, _, q in heard if t < on - 0.1), (on, p)
    errors = run.grid_errors_ms()
    print(f"grid ms: median {np.median(errors):.2f}, p90 {np.percentile(errors, 90):.2f}; harmony {harmony_ratio(run.improv, run.melody):.3f}")
    assert np.median(errors) < run.beat_s * 1000 / 4, errors  # on the beat, not somewhere between
    last_played = max(on for on, _, _ in played)
    # The last key event improv heard: every onset, and every release it heard before its last
    # note (a note-off lost to an xrun shows as a release at shutdown, after everything).
    last_heard = max([on for on, _, _ in heard] + [off for _, off, _ in heard if off < last_played])
    lost = sum(off >= last_played for _, off, _ in heard)
    print(f"band's last onset {last_played - last_heard:.3f} s after the last key heard; {lost} note-off(s) lost; {len(heard)} of {len(run.melody)} keys heard")
    assert last_played - last_heard <= 4 * run.beat_s + 0.05, (last_played - last_heard, lost)  # a bar more, then silence
    assert last_played - last_heard >= 2 * run.beat_s, last_played - last_heard  # it did keep time after the last key
    assert harmony_ratio(run.improv, run.melody) > 0.5


def test_switching_mode_mid_phrase_leaves_no_note_hanging_over_jack(jack, tmp_path):
    """Accompanying, then the mode knob turned to answer in the middle of the phrase: the chords
    stop at once (every one closed), the phrase is answered, and SIGTERM in the answer leaves nothing on."""
    import signal
    import subprocess
    import time

    import mido
    from support.serve_process import Lines, Listener, serve_cmd, tear_down

    from improv.io.rtmidi_ports import RtOutput, resolve_api

    proc = subprocess.Popen(serve_cmd(tiny_checkpoint_file(tmp_path), "--virtual", "--mode", "accompany", "--bpm", "120", *NO_PROBE), env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener = performer = None
    try:
        lines = Lines(proc.stdout)
        banner = lines.wait_for("improv: listening on", timeout=60)
        assert "mode accompany" in banner
        in_name, out_name = banner.split("'")[1], banner.split("'")[3]
        performer = RtOutput(resolve_api("jack"), "performer", port=in_name)
        listener = Listener(out_name)
        time.sleep(0.3)
        switched = None
        for i, note in enumerate([67, 69, 71, 72, 74, 72, 71, 69]):
            if i == 4:
                switched = time.perf_counter()
                for _ in range(2):  # the mode knob to answer, as a knob sends it: twice, a JACK cycle apart
                    performer.send(mido.Message("control_change", control=85, value=0))  # (one dropped at an xrun)
                    time.sleep(0.02)
            performer.send(mido.Message("note_on", note=note, velocity=80))
            time.sleep(0.45)
            performer.send(mido.Message("note_off", note=note))
            time.sleep(0.05)
        phrase_end = time.perf_counter()
        listener.poll()
        before = [t for t, m in listener.note_ons() if t < switched]
        assert before, lines.rest()  # it was accompanying
        # (0.5 s: a loop stalled on a loaded machine sends late what fell due before the switch)
        assert not [t for t, m in listener.note_ons() if switched + 0.5 < t < phrase_end], "chords went on after the switch"
        assert listener.wait(lambda got: any(t > phrase_end and m.type == "note_on" for t, m in got), timeout=15), lines.rest()  # answered
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, lines.rest()
        assert_closed_at_the_end(listener, lines)  # every note closed, All Notes Off: as far as JACK delivered
    finally:
        tear_down(proc, listener.port if listener else None, performer)
