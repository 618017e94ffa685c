"""The network and its numpy step path: same outputs, one event at a time."""

from __future__ import annotations

import numpy as np
import pytest
from support.needs_torch import torch_or_skip

torch = torch_or_skip()  # the whole module trains or reads .pt files: skipped, saying how to get torch, without it

from improv.model.network import ImprovNet, event_losses
from improv.model.sampling import SamplingParams
from improv.model.step_model import HEAD_ORDER, StepModel, random_step_model
from improv.music.tokenizer import DURATION, EOS, PITCH, Tokenizer
from improv.settings.sections import ModelSettings

TOK = Tokenizer()


def random_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, n) for size in TOK.sizes], axis=1).astype(np.uint8)


def pair(cell: str, conditional: bool, layers: int = 2):
    settings = ModelSettings(cell=cell, embed_dim=24, hidden_size=48, num_layers=layers, conditional_heads=conditional)
    torch.manual_seed(3)
    net = ImprovNet(settings, TOK.sizes).eval()
    with torch.no_grad():  # larger weights than the initialisation, as after training
        for p in net.parameters():
            p.mul_(1.5)
    weights = {k: v.numpy() for k, v in net.state_dict().items()}
    return net, StepModel(weights, cell, layers, conditional, TOK)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("conditional", [True, False])
def test_step_matches_forward_over_a_long_sequence(cell, conditional):
    net, step_model = pair(cell, conditional)
    rows = random_rows(1501)
    inputs, targets = torch.tensor(rows[None, :-1]).long(), torch.tensor(rows[None, 1:]).long()
    with torch.no_grad():
        logits, _ = net(inputs, targets)
    state = step_model.initial_state()
    worst = 0.0
    for t in range(len(rows) - 1):
        state = step_model.step(state, rows[t])
        for field, lg in enumerate(step_model.event_logits(state, rows[t + 1])):
            worst = max(worst, float(np.abs(lg - logits[field][0, t].numpy()).max()))
    assert worst < 1e-5


def test_prime_equals_stepping_and_step_does_not_mutate():
    _, step_model = pair("lstm", True)
    rows = random_rows(100, seed=5)
    state = step_model.initial_state()
    before = state.copy()
    stepped = state
    for row in rows:
        stepped = step_model.step(stepped, row)
    assert np.array_equal(state.h, before.h) and np.array_equal(state.c, before.c)
    primed = step_model.prime(rows)
    assert np.array_equal(primed.h, stepped.h) and np.array_equal(primed.c, stepped.c)


def test_event_nll_matches_torch_cross_entropy():
    net, step_model = pair("lstm", True)
    rows = random_rows(41, seed=2)
    inputs, targets = torch.tensor(rows[None, :-1]).long(), torch.tensor(rows[None, 1:]).long()
    with torch.no_grad():
        logits, _ = net(inputs, targets)
        expected = event_losses(logits, targets, reduction="sum").numpy()
    state = step_model.initial_state()
    total = np.zeros(4)
    for t in range(len(rows) - 1):
        state = step_model.step(state, rows[t])
        total += step_model.event_nll(state, rows[t + 1])
    assert np.allclose(total, expected, rtol=1e-4)


def test_sample_event_is_seeded_and_respects_masks():
    model = random_step_model(TOK, seed=1)
    state = model.prime(random_rows(20))
    params = SamplingParams(temperature=1.5)
    a = [model.sample_event(state, np.random.default_rng(7), params).tolist() for _ in range(3)]
    assert a[0] == a[1] == a[2]
    mask = np.zeros(130, dtype=bool)
    mask[[60, 64, 67]] = True
    rng = np.random.default_rng(0)
    for _ in range(200):
        row = model.sample_event(state, rng, params, pitch_mask=mask)
        assert row[PITCH] in (60, 64, 67)
        assert row[DURATION] >= 1  # a note never gets the specials' duration class


def test_sampled_special_comes_back_as_special_row():
    model = random_step_model(TOK, seed=1)
    state = model.initial_state()
    mask = np.zeros(130, dtype=bool)
    mask[EOS] = True
    row = model.sample_event(state, np.random.default_rng(0), SamplingParams(), pitch_mask=mask)
    assert row.tolist() == [EOS, 0, 0, 0]


def test_event_losses_shapes():
    net, _ = pair("lstm", True, layers=1)
    rows = torch.tensor(random_rows(9)[None]).long()
    logits, state = net(rows[:, :-1], rows[:, 1:])
    assert [tuple(lg.shape) for lg in logits] == [(1, 8, n) for n in TOK.sizes]
    assert event_losses(logits, rows[:, 1:]).shape == (4,)
    assert event_losses(logits, rows[:, 1:], reduction="none").shape == (4, 1, 8)
    assert sorted(HEAD_ORDER) == [0, 1, 2, 3]
