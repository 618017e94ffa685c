"""The ending rule (``realtime.ending``): a line's likely last note drawn toward the voice's real
endings (tonic, third or fifth, other) at their shares; nothing else is bent; each voice gets its
own shares; the planner tells it where the answer ends."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from improv.errors import ImprovError
from improv.music.tokenizer import N_PITCH, OFFSET, PITCH, Tokenizer
from improv.realtime.ending import ending, ending_classes, likely_last
from improv.realtime.planner import Planner
from improv.realtime.processors import Processor, answer_processors, step_of
from improv.realtime.quantiser import Quantiser
from improv.settings.load import load_settings
from improv.settings.serve_section import ServeSettings
from tests.test_processors import VALUES, make_answer

C = (0, False)
SHARES = (0.5, 0.3)


def near_end(**fields):
    """A line answering a call of 2 notes a beat, 7.5 beats into an 8-beat answer."""
    return make_answer(**{"sampled": 10, "onsets": 10, "max_voices": 1, "line": [64] * 10, "beats": 7.0, "tonality": C, "call_density": 2.0, **fields})


def drawn(answer, end: float | None = 8.0, offset: int = 6, strength: float = 1.0, shares=SHARES, logits=None):
    """The pitch logits the rule leaves for the note ``offset`` after the answer's last onset."""
    step = step_of(answer, VALUES, False, end)
    row = np.zeros(4, dtype=np.int64)
    row[OFFSET] = offset
    logits = np.random.default_rng(1).normal(0.0, 2.0, N_PITCH) if logits is None else logits
    out, mask = Processor("ending", partial(ending, shares=shares), strength)(step, PITCH, row, logits, None)
    return logits, out, mask


def class_mass(logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    z = logits[:128] if mask is None else np.where(mask[:128], logits[:128], -np.inf)
    p = np.exp(z - z.max())
    return np.bincount(ending_classes(C, 128), weights=p, minlength=3) / p.sum()


def test_the_likely_last_note_is_drawn_at_the_voices_shares():
    before, after, mask = drawn(near_end())
    assert mask is None
    assert class_mass(after) == pytest.approx([0.5, 0.3, 0.2])
    assert not np.allclose(class_mass(before), [0.5, 0.3, 0.2])
    # Within a class the model still chooses: the same differences between its notes
    tonic = np.flatnonzero(ending_classes(C, 128) == 0)
    assert np.allclose(np.diff(after[tonic]), np.diff(before[tonic]))
    # Half the strength, half the way (in nats)
    _, half, _ = drawn(near_end(), strength=0.5)
    assert np.allclose(half[:128] - before[:128], 0.5 * (after[:128] - before[:128]))


def test_only_the_likely_last_note_of_a_line_is_bent():
    assert likely_last(step_of(near_end(), VALUES, False, 8.0), np.array([0, 6, 0, 0]))  # 7.5 + 0.5 >= 8
    for answer, end, offset in (
        (near_end(), 8.0, 3),  # at 7.25: the next note, half a beat on, still in the answer
        (near_end(), None, 6),  # a length counted in events: no end in beats
        (near_end(max_voices=3), 8.0, 6),  # a chordal answer
        (near_end(tonality=None), 8.0, 6),  # no key heard
        (near_end(onset_pitches={64}), 8.0, 0),  # a chord note, not a new onset
    ):
        before, after, _ = drawn(answer, end, offset)
        assert np.array_equal(before, after), (end, offset)
    before, after, _ = drawn(near_end(), shares=())  # a voice with no shares known
    assert np.array_equal(before, after)
    before, after, _ = drawn(near_end(), strength=0.0)
    assert np.array_equal(before, after)


def test_each_voice_gets_its_own_shares_and_a_voice_with_none_is_off():
    s = ServeSettings(ending_shares={"folk": [0.4, 0.35]})
    by_name = {p.name: p for p in answer_processors(s, "folk")}
    assert by_name["ending"].strength == 1.0 and by_name["ending"].process.keywords["shares"] == (0.4, 0.35)
    assert [p.name for p in answer_processors(s, "folk")][-2:] == ["variety", "ending"]  # last: its shares hold of the draw
    assert {p.name: p.strength for p in answer_processors(s, "bach")}["ending"] == 0.0
    assert {p.name: p.strength for p in answer_processors(ServeSettings(ending_shares={"folk": [0.4, 0.35]}, rule_ending=0.0), "folk")}["ending"] == 0.0


def test_the_planner_tells_the_rule_where_the_answer_ends():
    settings = ServeSettings(ending_shares={"": list(SHARES)}, response_unit="beats")
    planner = Planner(settings, Quantiser(Tokenizer()), 0, 0)
    answer = near_end()
    logits = np.random.default_rng(1).normal(0.0, 2.0, N_PITCH)
    row = np.array([0, 6, 0, 0])
    guided, mask = planner.guide(answer)(PITCH, row, logits.copy(), None)
    solo = [p for p in planner.processors[0] if p.name == "ending"][0]
    alone, _ = solo(step_of(answer, VALUES, False, 8.0), PITCH, row, logits.copy(), None)
    assert not np.array_equal(alone, logits)
    # the other rules bend too; the ending is the last word on the classes' shares
    assert class_mass(guided, mask) == pytest.approx([0.5, 0.3, 0.2], abs=1e-6)


def test_the_shares_from_the_config_and_bad_shares_are_one_line():
    assert load_settings(None, ["serve.ending_shares={folk: [0.3, 0.4]}"]).serve.ending_shares == {"folk": [0.3, 0.4]}
    for bad in ("{folk: [0.8, 0.4]}", "{folk: [0.1]}", "[0.1, 0.2]", "{folk: [-0.1, 0.2]}"):
        with pytest.raises(ImprovError, match="ending_shares"):
            load_settings(None, [f"serve.ending_shares={bad}"])
    with pytest.raises(ImprovError, match="rule_ending"):
        load_settings(None, ["serve.rule_ending=5"])
