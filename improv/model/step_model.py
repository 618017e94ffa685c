"""The trained network run one event at a time in plain numpy: the real-time and generation path.

Why numpy: on a CPU, torch's per-call overhead dominates a single small LSTM step (milliseconds in
eager torch); the same step as a few float32 matrix-vector products costs a fraction of that. This
module never imports torch: weights arrive as numpy arrays named as in ``ImprovNet.state_dict()``.

Two precomputations keep a step short:
* the first layer's input is a sum of four embeddings, so ``W_ih @ x`` is a sum of four rows of
  tables precomputed as ``embedding @ W_ih.T`` (biases folded in): no input matrix product at all;
* a deeper layer's input and recurrent products are one product with ``[W_ih | W_hh]``.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from improv.model.sampling import SamplingParams, sample
from improv.music.tokenizer import (
    BOS,
    DURATION,
    OFFSET,
    PITCH,
    TOKEN_DTYPE,
    VELOCITY,
    Tokenizer,
)

# The order the heads are sampled in: when the next event comes, then which pitch, how long, how loud.
HEAD_ORDER: tuple[int, int, int, int] = (OFFSET, PITCH, DURATION, VELOCITY)

_F32 = np.float32

# How a caller bends one head: (field, the row drawn so far, logits, mask) -> (logits, mask).
Guide = Callable[[int, np.ndarray, np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass
class State:
    """Recurrent state: hidden (and, for an LSTM, cell) vectors of every layer."""

    h: np.ndarray  # (layers, hidden)
    c: np.ndarray | None  # (layers, hidden) for an LSTM, None for a GRU

    def copy(self) -> "State":
        return State(self.h.copy(), None if self.c is None else self.c.copy())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings for large |x|, same value as 1 / (1 + exp(-x)).
    return 0.5 + 0.5 * np.tanh(0.5 * x)


class StepModel:
    """One event in, one state out; sample the next event from a state. Immutable weights."""

    def __init__(self, weights: Mapping[str, np.ndarray], cell: str, num_layers: int, conditional_heads: bool, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.cell = cell
        self.num_layers = num_layers
        self.conditional_heads = conditional_heads
        w = {k: np.ascontiguousarray(v, dtype=_F32) for k, v in weights.items()}
        self.hidden_size = w["rnn.weight_hh_l0"].shape[1]
        hs = self.hidden_size
        # Layer 0: projected embedding tables, one per field; the layer's biases ride on the pitch table.
        w_ih0 = w["rnn.weight_ih_l0"]
        self._input_tables = [w[f"embed.{i}.weight"] @ w_ih0.T for i in range(4)]
        if cell == "lstm":
            self._input_tables[PITCH] = self._input_tables[PITCH] + w["rnn.bias_ih_l0"] + w["rnn.bias_hh_l0"]
            self._w_hh0 = w["rnn.weight_hh_l0"]
            self._w_cat = [np.concatenate([w[f"rnn.weight_ih_l{l}"], w[f"rnn.weight_hh_l{l}"]], axis=1) for l in range(1, num_layers)]
            self._b_cat = [w[f"rnn.bias_ih_l{l}"] + w[f"rnn.bias_hh_l{l}"] for l in range(1, num_layers)]
        else:
            # GRU: the candidate gate needs the recurrent product apart (r * (W_hn h + b_hn)).
            self._input_tables[PITCH] = self._input_tables[PITCH] + w["rnn.bias_ih_l0"]
            self._w_ih = [None] + [w[f"rnn.weight_ih_l{l}"] for l in range(1, num_layers)]
            self._b_ih = [None] + [w[f"rnn.bias_ih_l{l}"] for l in range(1, num_layers)]
            self._w_hh = [w[f"rnn.weight_hh_l{l}"] for l in range(num_layers)]
            self._b_hh = [w[f"rnn.bias_hh_l{l}"] for l in range(num_layers)]
        self._head_w = w["head_hidden.weight"]  # (4H, H)
        self._head_b = w["head_hidden.bias"]
        self._head_slices = [slice(k * hs, (k + 1) * hs) for k in range(len(HEAD_ORDER))]
        self._cond = {}
        if conditional_heads:
            self._cond = {(k, j): w[f"cond.{k}_{j}.weight"] for k in range(len(HEAD_ORDER)) for j in range(k)}
        self._out_w = [w[f"head_out.{k}.weight"] for k in range(len(HEAD_ORDER))]
        self._out_b = [w[f"head_out.{k}.bias"] for k in range(len(HEAD_ORDER))]
        # A note never has duration class 0 (that class is reserved for special tokens).
        self._note_duration_mask = np.ones(tokenizer.sizes[DURATION], dtype=bool)
        self._note_duration_mask[0] = False

    # ---- state ---------------------------------------------------------------------------------

    def initial_state(self) -> State:
        zeros = np.zeros((self.num_layers, self.hidden_size), dtype=_F32)
        return State(zeros, zeros.copy() if self.cell == "lstm" else None)

    def step(self, state: State, row: Sequence[int]) -> State:
        """Feed one event row; returns the new state (the argument is left unchanged)."""
        p, o, d, v = (int(x) for x in row)
        t = self._input_tables
        x_gates = t[PITCH][p] + t[OFFSET][o] + t[DURATION][d] + t[VELOCITY][v]
        if self.cell == "lstm":
            return self._step_lstm(state, x_gates)
        return self._step_gru(state, x_gates)

    def _step_lstm(self, state: State, gates0: np.ndarray) -> State:
        hs = self.hidden_size
        new_h = np.empty_like(state.h)
        new_c = np.empty_like(state.c)
        below = None
        for layer in range(self.num_layers):
            if layer == 0:
                gates = gates0 + self._w_hh0 @ state.h[0]
            else:
                gates = self._w_cat[layer - 1] @ np.concatenate([below, state.h[layer]]) + self._b_cat[layer - 1]
            i = _sigmoid(gates[:hs])
            f = _sigmoid(gates[hs : 2 * hs])
            g = np.tanh(gates[2 * hs : 3 * hs])
            o = _sigmoid(gates[3 * hs :])
            c = f * state.c[layer] + i * g
            new_c[layer] = c
            below = new_h[layer] = o * np.tanh(c)
        return State(new_h, new_c)

    def _step_gru(self, state: State, x0: np.ndarray) -> State:
        hs = self.hidden_size
        new_h = np.empty_like(state.h)
        below = None
        for layer in range(self.num_layers):
            xg = x0 if layer == 0 else self._w_ih[layer] @ below + self._b_ih[layer]
            hg = self._w_hh[layer] @ state.h[layer] + self._b_hh[layer]
            r = _sigmoid(xg[:hs] + hg[:hs])
            z = _sigmoid(xg[hs : 2 * hs] + hg[hs : 2 * hs])
            n = np.tanh(xg[2 * hs :] + r * hg[2 * hs :])
            below = new_h[layer] = (1 - z) * n + z * state.h[layer]
        return State(new_h, None)

    def prime(self, rows: np.ndarray, state: State | None = None) -> State:
        """Zero state (or ``state``), then every row in order."""
        state = self.initial_state() if state is None else state
        for row in np.asarray(rows):
            state = self.step(state, row)
        return state

    # ---- heads ---------------------------------------------------------------------------------

    def _head_logits(self, pre: np.ndarray, k: int, chosen: Sequence[int]) -> np.ndarray:
        z = pre[self._head_slices[k]]
        for j in range(k):
            if self.conditional_heads:
                z = z + self._cond[(k, j)][chosen[j]]
        return self._out_w[k] @ np.maximum(z, 0) + self._out_b[k]

    def sample_event(self, state: State, rng: np.random.Generator, params: SamplingParams = SamplingParams(), pitch_mask: np.ndarray | None = None, guide: Guide | None = None) -> np.ndarray:
        """The next event drawn from ``state`` (not fed back: call ``step`` with it).

        ``pitch_mask`` (bool, length 130) limits the pitch head, e.g. to exclude BOS/EOS in a live
        response or to keep a key. ``guide(field, row, logits, mask) -> (logits, mask)`` may bend
        each head before its draw, knowing the fields already drawn in ``row`` (the answer's
        texture, register, imitation of the call). A sampled EOS/BOS comes back as that special
        token's row. Exactly one random number per head, guided or not.
        """
        return self.draw_event(state, lambda field, logits, drawn, mask: sample(logits, rng, drawn, mask), params, pitch_mask, guide)

    def draw_event(self, state: State, pick: Callable[[int, np.ndarray, SamplingParams, "np.ndarray | None"], int], params: SamplingParams = SamplingParams(), pitch_mask: np.ndarray | None = None, guide: Guide | None = None) -> np.ndarray:
        """``sample_event`` with each head's class chosen by ``pick(field, logits, params, mask)``
        (a draw, or the class of a given event while its likelihood is scored)."""
        pre = self._head_w @ state.h[-1] + self._head_b
        chosen: list[int] = []
        row = np.zeros(4, dtype=TOKEN_DTYPE)
        # A guide bends the logits after the temperature: the temperature is the voice's, and a
        # rule's nats are the same at any temperature.
        drawn = params if guide is None or params.temperature == 1.0 else dataclasses.replace(params, temperature=1.0)
        for k, field in enumerate(HEAD_ORDER):
            logits = self._head_logits(pre, k, chosen)
            mask = pitch_mask if field == PITCH else self._note_duration_mask if field == DURATION else None
            if guide is not None:
                if drawn is not params:
                    logits = logits / params.temperature
                logits, mask = guide(field, row, logits, mask)
            cls = pick(field, logits, drawn, mask)
            if field == PITCH and cls >= BOS:
                return self.tokenizer.special(cls)
            chosen.append(cls)
            row[field] = cls
        return row

    def event_logits(self, state: State, next_row: Sequence[int]) -> list[np.ndarray]:
        """Logits of each field (FIELD order) for the event after ``state``, each head conditioned
        on ``next_row``'s earlier fields (teacher forcing, as in training)."""
        pre = self._head_w @ state.h[-1] + self._head_b
        chosen = [int(next_row[field]) for field in HEAD_ORDER]
        out: list[np.ndarray] = [np.empty(0)] * 4
        for k, field in enumerate(HEAD_ORDER):
            out[field] = self._head_logits(pre, k, chosen)
        return out

    def event_nll(self, state: State, next_row: Sequence[int]) -> np.ndarray:
        """Negative log-likelihood (nats) of each field of ``next_row``, FIELD order."""
        nll = np.empty(4)
        for field, logits in enumerate(self.event_logits(state, next_row)):
            z = logits.astype(np.float64)
            m = z.max()
            nll[field] = m + np.log(np.exp(z - m).sum()) - z[int(next_row[field])]
        return nll


def weight_shapes(cell: str, hidden_size: int, num_layers: int, embed_dim: int, conditional_heads: bool, sizes: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Every weight of the network and its shape, named as ``ImprovNet.state_dict()`` names them,
    from the model settings alone (no torch): what a weights file must hold exactly."""
    hs, gates = hidden_size, (4 if cell == "lstm" else 3) * hidden_size
    shapes: dict[str, tuple[int, ...]] = {f"embed.{i}.weight": (n, embed_dim) for i, n in enumerate(sizes)}
    for layer in range(num_layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (gates, embed_dim if layer == 0 else hs)
        shapes[f"rnn.weight_hh_l{layer}"] = (gates, hs)
        shapes[f"rnn.bias_ih_l{layer}"] = (gates,)
        shapes[f"rnn.bias_hh_l{layer}"] = (gates,)
    shapes["head_hidden.weight"] = (hs * len(HEAD_ORDER), hs)
    shapes["head_hidden.bias"] = (hs * len(HEAD_ORDER),)
    if conditional_heads:
        for k in range(len(HEAD_ORDER)):
            for j in range(k):
                shapes[f"cond.{k}_{j}.weight"] = (sizes[HEAD_ORDER[j]], hs)
    for k, field in enumerate(HEAD_ORDER):
        shapes[f"head_out.{k}.weight"] = (sizes[field], hs)
        shapes[f"head_out.{k}.bias"] = (sizes[field],)
    return shapes


def random_weights(tokenizer: Tokenizer, hidden_size: int, num_layers: int, embed_dim: int, cell: str = "lstm", conditional_heads: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of an untrained model, named as ``ImprovNet.state_dict()`` names them (for tests)."""
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(hidden_size)
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(cell, hidden_size, num_layers, embed_dim, conditional_heads, tokenizer.sizes).items():
        if name.startswith("embed."):
            out[name] = rng.normal(0, 0.1, shape).astype(_F32)
        elif name.startswith("cond."):
            out[name] = rng.normal(0, 0.02, shape).astype(_F32)
        else:
            out[name] = rng.uniform(-scale, scale, size=shape).astype(_F32)
    return out


def random_step_model(tokenizer: Tokenizer | None = None, hidden_size: int = 32, num_layers: int = 1, embed_dim: int = 16, seed: int = 0, cell: str | None = None, conditional_heads: bool = True) -> StepModel:
    """An untrained step model, without torch: for tests of the engine and of generation.
    ``cell`` defaults to the configured default (``ModelSettings().cell``)."""
    if cell is None:
        from improv.settings.sections import ModelSettings

        cell = ModelSettings().cell
    tokenizer = tokenizer or Tokenizer()
    weights = random_weights(tokenizer, hidden_size, num_layers, embed_dim, cell, conditional_heads, seed)
    return StepModel(weights, cell, num_layers, conditional_heads, tokenizer)
