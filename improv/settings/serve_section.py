"""The live daemon's settings (`serve:` in config.yaml): ports, the answer's rules and dials, the
pulse, dynamics, session memory and Link. Its own module because it is the largest section and the one
every round adds to; ``sections.Settings`` holds it with the others."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ServeSettings:
    # rtmidi API: "" = the system default; or alsa, jack, coremidi, winmm.
    api: str = ""
    # Port name (substring) for both input and output; in_port / out_port override it per side.
    port: str = ""
    in_port: str = ""
    out_port: str = ""
    # Create virtual ports (client "improv", ports "in" and "out") instead of opening existing ones.
    virtual: bool = False
    client_name: str = "improv"
    # MIDI channel (1-16) improv plays on.
    channel: int = 1
    # General MIDI programs (0-127) of the two parts in recorded files (serve --record, the demo's
    # file, and the demo's --out port), so that a synth plays them apart: 0 = acoustic grand
    # piano for the performer, 11 = vibraphone for improv.
    performer_program: int = 0
    program: int = 11
    # Only notes and the sustain pedal on this channel (1-16) are the performer's; 0 = every channel.
    # improv's own controllers (cc_*) count on every channel (a controller box sends on its own).
    listen_channel: int = 0
    # A call ends this long after the last key and the sustain pedal are released: silence_beats at
    # the current tempo, or silence_ms when that is longer (0 = off): a beat of silence, at any tempo.
    silence_ms: float = 300.0
    silence_beats: float = 1.0
    # The answer's first note goes on the call's beat grid: the first point of this grid (in beats;
    # 1 = the next beat, 0.5 = the next half beat) at or after the end of the call; 0 = at once.
    # The grid is the MIDI clock's beat when a DAW's transport (start / song position) places it,
    # else the call's own, its first note on a beat.
    answer_grid_beats: float = 1.0
    # ... and at least this many beats after the silence: the answer comes on the second beat after
    # the call's last note ends (with a beat of silence), the same for the same call at any tempo.
    answer_lead_beats: float = 0.5
    # A call ends anyway after this many beats (0 = no limit); a call of fewer notes gets no answer.
    max_call_beats: float = 64.0
    min_call_notes: int = 2
    # The answer is as long as the call, counted in beats or in note events; response_length > 0
    # fixes it to that many units instead. Never more than max_response_events notes.
    response_unit: Literal["beats", "events"] = "beats"
    response_length: float = 0.0
    max_response_events: int = 256
    # How far the answer's loudness follows the call's (1 = same average velocity, 0 = the model's own).
    follow_velocity: float = 1.0
    # Keep the answer in the key of the call (Krumhansl-Schmuckler estimate, plus the call's own pitches).
    keep_key: bool = True
    # Notes the answer strikes at once, at most: 1 = a single line (never two notes at once), 0 = as
    # the call did (a single line answers a single line, chords answer chords, up to its largest).
    max_voices: int = 0
    # Where the answer lies: "follow" = around the call's register; "free" = wherever the voice goes.
    register: Literal["follow", "free"] = "follow"
    # How much the answer takes up the call (0 = a free continuation ... 1 = the call's motif
    # restated and varied: its rhythm, its top line's intervals, a fifth away or in sequence;
    # 0.75 is the lowest where every shipped voice meets the uptake targets); knob: cc_imitation.
    imitation: float = 0.75
    # The answer ends as a phrase: from 80% of its length on, on the first note that lies on a beat,
    # on a tonic-triad tone of the call's key and lasts a beat or more (at 1.5x its length at the latest);
    # it begins on a tonic-triad tone.
    phrase_ending: bool = True
    # Range of pitches the answer may use (lowest <= highest).
    lowest_pitch: int = 21
    highest_pitch: int = 108
    # Events (performer and improv) the model is re-primed from before each answer.
    window: int = 100
    # The tempo before the first call: the prior the first call's tempo is heard near (the nearer of
    # two metrical levels that fit alike), and the tempo when no clock is followed and none is heard.
    bpm: float = 100.0
    # Notes struck within this many milliseconds of a chord's first note are that chord (for the
    # model, the tempo estimate and the answer's texture): a human chord spreads over 15-40 ms.
    chord_ms: float = 40.0
    # Follow incoming MIDI clock (24 per beat) when a DAW sends it.
    follow_clock: bool = True
    # Otherwise hear the tempo, beat and bar of each call from its onsets (music/pulse.py), with the tempo
    # of the set (or serve.bpm, for a first call or after a long pause) choosing among metrical levels.
    estimate_tempo: bool = True
    # Controller numbers (CC 0-127; -1 = off): temperature knob, answer-length knob (x0.25..x4,
    # centre = as long as the call), end-of-call switch, panic switch, voice knob (its range split
    # among the loaded voices), imitation knob. Each its own number, none 64 (the pedal).
    cc_temperature: int = 21
    cc_length: int = 22
    cc_end_call: int = 20
    cc_panic: int = 23
    cc_voice: int = 24
    cc_imitation: int = 25
    # MIDI Program Change N picks the Nth loaded voice (0 = the first; `improv serve` lists them).
    program_change_voice: bool = True
    # The temperature knob's range (log scale from min at 0 to max at 127; min <= max).
    temperature_min: float = 0.25
    temperature_max: float = 2.0
    # Keys (and the pedal) still down after this long with no note, release or pedal change at all
    # count as released (a lost note-off must not hold a call open forever); keys sooner, after
    # hold_bars bars, once the performer's pulse is known.
    stuck_note_s: float = 10.0
    # Improv's own messages coming back through a loopback port (IAC, loopMIDI) are not the
    # performer's: a loopback is detected by a probe (a sysex instruments ignore: F0 7D 69 6D 70 nn
    # F7) sent when the session starts and when a port comes back, and while one is there, a
    # message equal to one improv sent at most echo_ms before (narrowed to 3x the probe's delay)
    # is its echo. echo_ms 0 or echo_probe false = no probe and no detection.
    echo_ms: float = 50.0
    echo_probe: bool = True
    # A note due more than late_ms ago (the machine stalled) is dropped ("drop": the answer keeps
    # its beat) or the rest of the answer moves later by the delay ("shift"); counted in the status line.
    late_policy: Literal["drop", "shift"] = "drop"
    late_ms: float = 30.0
    # Sample the answer this far ahead of the notes being sent.
    lookahead_ms: float = 500.0
    # The loop sleeps until this long before a send, then spins on the clock to the exact time.
    spin_ms: float = 1.5
    # Real-time (SCHED_FIFO) priority of the serve loop where the system allows it (Linux, root or an
    # rtprio limit); 0 = normal. On JACK, below JACK's client threads (session.process.loop_priority).
    realtime_priority: int = 5
    # Check a named port that has vanished this often, and reopen it when it is back.
    reconnect_s: float = 1.0
    # ---- the answer's rules (realtime/processors.py; issue 19) ----
    # Each rule's strength: 1 = as designed, 0 = off, 2 = twice its nats. key (with keep_key):
    # a note outside the call's key only where the voice gives it 2 % or more, and then bent
    # away (0: the key is not kept at all); texture: a line answers
    # a line, chords no fuller than the call's; register: around the call's; motif: the call's
    # motif taken up (as far as imitation says); cadence and opening: the phrase's ending and its
    # first onset on the tonic triad (with phrase_ending). The pitch range and one key per onset
    # are not rules: they always hold.
    rule_key: float = 1.0
    rule_texture: float = 1.0
    rule_register: float = 1.0
    rule_motif: float = 1.0
    # (cadence 0: at 1, with the tonic triad on every beat of the ending, bach's answers ended on
    # a cadence 0.45 of the time against the real answers' 0.07; at 0.3 folk's 0.28 against 0.10)
    rule_cadence: float = 0.0
    rule_opening: float = 1.0
    # dynamics: the answer's velocities shaped after the call's (realtime/dynamics.py): its level
    # leaning to where the call ended, its crescendo or diminuendo carried on, an arc, accents on
    # the beat, a softer ending; 0 = the call's level, flat (follow_velocity still blends).
    rule_dynamics: float = 1.0
    # density: notes per beat near the call's (times serve.density); echo: no opening that plays
    # the call back at pitch (its first two notes may repeat the call's, not the third).
    rule_density: float = 1.0
    rule_echo: float = 1.0
    # voicing: a chordal answer's lowest notes in the call's bass register, no three notes within
    # a whole tone in one chord.
    rule_voicing: float = 1.0
    # ---- chordal answers (issue 19, bach and renaissance) ----
    # Voices (by name) whose answers keep no key: the key rule off for them, as rule_key 0. Modal
    # music (renaissance) fits a major or minor key estimate badly: without the rule both listeners
    # of `improv eval --duet` told its answers less well (README, #19's sixth pass).
    keyless_voices: list[str] = field(default_factory=lambda: ["renaissance"])
    # ---- end of the chordal answers' block ----
    # The answer's notes per beat over the call's (0.25..4; 1 = as dense as the call); knob: cc_density.
    density: float = 1.0
    cc_density: int = 26

    # ---- the pulse (issue 18): where the answer's notes fall on the performer's grid ----
    # Where the answer enters: "beat" = on a beat (serve.answer_grid_beats), "bar" = on the next
    # downbeat of the performer's bar (metre and downbeat heard from the call's accents, or the MIDI
    # clock's song position), and the answer lasts whole bars, as musicians trading fours do.
    entry: Literal["beat", "bar"] = "beat"
    # The answer's swing: the long-to-short ratio of its off-beat eighths (1 = straight, 2 = triplet
    # swing); 0 = the call's own, heard from its off-beat eighths.
    swing: float = 0.0
    # Notes are sent this many milliseconds early, so that they sound on the grid (a synth's or a
    # network's output latency; `improv calibrate` measures a loopback's round trip).
    output_latency_ms: float = 0.0
    # ... plus, for instruments whose latency depends on velocity (a Disklavier), [velocity, ms]
    # pairs interpolated between (e.g. [[20, 60], [100, 15]]); empty = none.
    output_latency_by_velocity: list[list[float]] = field(default_factory=list)

    # ---- session memory (realtime/memory.py) ----
    # How much improv takes up the performer's own idiom during the set (0 = the voice alone ... 1 =
    # the most the session memory may bend the voice); knob: cc_adapt.
    adapt: float = 0.5
    # The memory fades: what was played forget_after seconds ago counts a tenth (0 = never fades).
    forget_after: float = 0.0
    # Controller numbers (0-127; -1 = off): the adapt knob (0 .. 1) and the forget switch (>= 64:
    # the session memory is forgotten at once).
    cc_adapt: int = 28
    cc_forget: int = 29
    # ---- play along (issue 20) ----
    # What improv does: answer (call and response), accompany (bass and chords under the
    # performer while they play, on their beat), loop (repeats its last answer, bar-aligned, until
    # the performer plays again), solo (plays on its own in the set's tempo, yields while the
    # performer plays). Switchable during a set: cc_mode, the monitor page, `serve --mode`.
    mode: Literal["answer", "accompany", "loop", "solo"] = "answer"
    # accompany: when the performer stops, improv keeps time for a bar, then stops or answers.
    after: Literal["stop", "answer"] = "stop"
    # accompany: what goes under the melody: "harmony" (a chord per beat chosen from the melody
    # heard so far, bass on its root) or "tonic" (the rule baseline: the key's tonic triad per bar).
    accompanist: Literal["harmony", "tonic"] = "harmony"
    # accompany: each beat's notes are decided this long before the beat (> 0: on time even when
    # the performer's note on that beat arrives at the same moment).
    decide_ms: float = 60.0
    # Beats in a bar (loop lengths, the accompaniment's bar, keeping time after the performer stops).
    bar_beats: int = 4
    # loop: the share of the loop's notes drawn again on each repeat (0 = the same every time).
    mutate: float = 0.0
    # Controller numbers (-1 = off): mode (a knob split in four: answer, accompany, loop, solo), mutate.
    cc_mode: int = 85
    cc_mutate: int = 86
    # Where MIDI-learned bindings and the knobs' last values are kept ("" = improv/controls.json
    # under the user config folder: $XDG_CONFIG_HOME or ~/.config).
    controls_file: str = ""
    # ---- stage robustness (stage2) ----
    # Keys held with nothing else played (no key down or up) for this many bars (bar_beats at the
    # set's tempo) count as up: the band stops keeping time, an answer-mode call ends. A long note
    # keeps both going; a note-off lost to an xrun or a pulled cable does not hold them until
    # serve.stuck_note_s (which alone decides while estimating with no call's tempo heard yet).
    hold_bars: int = 2
    # ---- the answer's pitch variety (line4; realtime/variety.py, issue 19) ----
    # variety: a line's notes already played in the answer cost 0.6 nats a use (up to 3 uses), so
    # it moves on to new ones as a tune does (0 = off, 0..4). Lines only: chords are untouched.
    rule_variety: float = 1.0
    link: bool = False  # ---- Ableton Link (issue 18): join the session (serve --link); README: who leads
    link_quantum: int = 4  # beats per bar of the session's phase (Link's quantum): the bars of entry: bar
