"""The eval baselines: proper probabilities, back-off to shorter contexts, the same events as the model."""

from __future__ import annotations

import numpy as np
import pytest

from improv.evaluation.baselines import MarkovModel, UnigramModel, event_codes
from improv.model.step_model import HEAD_ORDER
from improv.music.tokenizer import BOS, DURATION, EOS, PITCH, Tokenizer

TOK = Tokenizer()


def piece(notes: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.array([(BOS, 0, 0, 0), *notes, (EOS, 0, 0, 0)], dtype=np.uint8)


def random_piece(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = np.stack([rng.integers(60, 66, n), rng.integers(0, 4, n), rng.integers(1, 5, n), rng.integers(0, 3, n)], axis=1)
    return piece([tuple(r) for r in rows])


@pytest.fixture(scope="module")
def corpus() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [random_piece(rng, 40) for _ in range(15)]


def test_event_codes_are_injective():
    rows = np.array([[129, 76, 76, 7], [0, 0, 0, 0], [60, 12, 12, 4], [60, 12, 12, 5]], dtype=np.uint8)
    codes = event_codes(rows, TOK.sizes)
    assert len(set(codes.tolist())) == 4 and codes.max() < np.prod(TOK.sizes)


@pytest.mark.parametrize("order", [0, 1, 4])
def test_every_field_distribution_sums_to_one_and_is_nonzero(corpus, order):
    model = MarkovModel(order, TOK.sizes).fit(corpus)
    rng = np.random.default_rng(1)
    unseen = piece([(20, 40, 50, 7)] * 6)  # pitches, times and velocities never seen in training
    for history, event in [(corpus[0][:10], corpus[0][10]), (corpus[3][:1], corpus[3][1]), (unseen[:5], unseen[5]), (random_piece(rng, 8)[:6], (EOS, 0, 0, 0))]:
        for field in range(4):
            p = model.field_probs(history, event, field)
            assert p.shape == (TOK.sizes[field],)
            assert abs(p.sum() - 1) < 1e-9
            assert p.min() > 0


def test_nll_is_the_sum_of_the_field_probabilities(corpus):
    model = MarkovModel(3, TOK.sizes).fit(corpus[2:])
    target = corpus[0]
    total, n = model.nll([target])
    assert n == len(target) - 1  # every event after BOS, EOS included
    expected = np.zeros(4)
    for t in range(1, len(target)):
        for field in HEAD_ORDER:
            expected[field] -= np.log(model.field_probs(target[:t], target[t], field)[target[t, field]])
    assert np.allclose(total, expected)


def test_a_context_seen_in_training_predicts_what_followed_it():
    motif = [(60, 6, 6, 3), (62, 6, 6, 3), (64, 6, 6, 3), (65, 6, 6, 3), (67, 12, 12, 5)]
    rng = np.random.default_rng(2)
    pieces = [piece(motif * 3)] + [random_piece(rng, 30) for _ in range(5)]
    model = MarkovModel(4, TOK.sizes).fit(pieces)
    history = piece(motif[:4])[:-1]  # BOS + the first four notes of the motif
    nxt = motif[4]
    assert model.field_probs(history, nxt, PITCH)[67] > 0.7  # pitch after the motif's start
    assert model.field_probs(history, nxt, DURATION)[12] > 0.7  # its duration, given its offset and pitch


def test_an_unseen_long_context_backs_off_to_the_shorter_one():
    rng = np.random.default_rng(3)
    pieces = [random_piece(rng, 60) for _ in range(10)]
    long_model = MarkovModel(4, TOK.sizes).fit(pieces)
    short_model = MarkovModel(1, TOK.sizes).fit(pieces)
    # Events never seen in training, then one that was: only the last event's context is known.
    last = tuple(int(x) for x in pieces[0][5])
    history = piece([(30, 40, 40, 7), (31, 41, 41, 7), (32, 42, 42, 7), last])[:-1]
    nxt = tuple(int(x) for x in pieces[0][6])
    for field in range(4):
        assert np.allclose(long_model.field_probs(history, nxt, field), short_model.field_probs(history, nxt, field))


def test_unigram_is_add_alpha_per_field():
    pieces = [piece([(60, 3, 3, 2), (60, 0, 6, 2), (62, 3, 3, 4)])]
    model = UnigramModel(TOK.sizes, alpha=0.5).fit(pieces)
    p = model.probs(0)  # pitch over 4 targets: 60, 60, 62, EOS
    assert p[60] == pytest.approx(2.5 / (4 + 0.5 * 130))
    assert p[61] == pytest.approx(0.5 / (4 + 0.5 * 130))
    assert abs(p.sum() - 1) < 1e-12
    total, n = model.nll(pieces)
    assert n == 4
    assert total[0] == pytest.approx(-np.log(p[[60, 60, 62, EOS]]).sum())


def test_markov_beats_unigram_on_structured_music():
    # A repeating bass-and-melody pattern with variations: context must help.
    rng = np.random.default_rng(4)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]

    def structured() -> np.ndarray:
        start = int(rng.integers(0, 4))
        notes = []
        for i in range(80):
            notes.append((scale[(start + i) % 8], 6 if i % 2 else 0, 6, 3 + (i % 4 == 0)))
        return piece(notes)

    train, test = [structured() for _ in range(10)], [structured() for _ in range(3)]
    markov = MarkovModel(4, TOK.sizes).fit(train)
    unigram = UnigramModel(TOK.sizes).fit(train)
    assert markov.nll(test)[0].sum() < 0.3 * unigram.nll(test)[0].sum()


def test_a_field_never_sees_its_own_value_or_later_fields(corpus):
    model = MarkovModel(4, TOK.sizes).fit(corpus)
    history, event = corpus[1][:12], corpus[1][12].copy()
    for k, field in enumerate(HEAD_ORDER):
        changed = event.copy()
        for later in HEAD_ORDER[k:]:
            changed[later] = (int(changed[later]) + 1) % TOK.sizes[later]
        assert np.array_equal(model.field_probs(history, event, field), model.field_probs(history, changed, field))
