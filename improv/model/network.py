"""The network: field embeddings -> stacked LSTM (or GRU) -> four heads. Training path (torch).

One input step is one event row ``[pitch, offset, duration, velocity]``. The four field embeddings
are summed into one vector, the recurrent stack reads it, and the top hidden state feeds four heads
that predict the next event's fields in the fixed order offset -> pitch -> duration -> velocity
(``HEAD_ORDER``). With ``conditional_heads`` each head also sees embeddings of the fields that come
before it in that order (teacher-forced from the targets in training, sampled at generation), so
for example the pitch is chosen knowing whether the note belongs to the chord just played.

Each head is a small MLP: ``relu(h @ W_k + b_k + sum_j C_kj[x_j]) @ U_k + c_k``. All four ``W_k`` are
one ``Linear(H, 4H)``, so the real-time path pays one matrix product for the heads' hidden layers.

``improv.inference.StepModel`` runs the same weights one event at a time in numpy; a test checks the
two agree to 1e-5 over long sequences.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from improv.model.step_model import HEAD_ORDER
from improv.settings.sections import ModelSettings

State = tuple[torch.Tensor, torch.Tensor] | torch.Tensor  # (h, c) for an LSTM, h for a GRU


def conditioning_pairs() -> list[tuple[int, int]]:
    """(head position k, earlier head position j) for every conditioning table."""
    return [(k, j) for k in range(len(HEAD_ORDER)) for j in range(k)]


class ImprovNet(nn.Module):
    def __init__(self, settings: ModelSettings, sizes: Sequence[int]) -> None:
        super().__init__()
        self.settings = settings
        self.sizes = tuple(int(n) for n in sizes)
        e, h = settings.embed_dim, settings.hidden_size
        self.embed = nn.ModuleList(nn.Embedding(n, e) for n in self.sizes)
        rnn_cls = nn.LSTM if settings.cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(e, h, settings.num_layers, batch_first=True, dropout=settings.dropout if settings.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(settings.dropout)
        self.head_hidden = nn.Linear(h, h * len(HEAD_ORDER))
        self.cond = nn.ModuleDict()
        if settings.conditional_heads:
            for k, j in conditioning_pairs():
                self.cond[f"{k}_{j}"] = nn.Embedding(self.sizes[HEAD_ORDER[j]], h)
        self.head_out = nn.ModuleList(nn.Linear(h, self.sizes[field]) for field in HEAD_ORDER)
        self._init_weights()

    def _init_weights(self) -> None:
        for emb in self.embed:
            nn.init.normal_(emb.weight, std=0.1)
        for emb in self.cond.values():
            nn.init.normal_(emb.weight, std=0.02)
        h = self.settings.hidden_size
        if self.settings.recurrent_init == "orthogonal":
            for name, param in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    with torch.no_grad():
                        for gate in range(param.shape[0] // h):
                            nn.init.orthogonal_(param[gate * h : (gate + 1) * h])
        if self.settings.cell == "lstm":
            # Forget-gate bias 1: remember by default early in training (Jozefowicz et al. 2015).
            for name, param in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        param[h : 2 * h].fill_(1.0)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        shape = (self.settings.num_layers, batch, self.settings.hidden_size)
        zeros = torch.zeros(shape, device=device)
        return (zeros, zeros.clone()) if self.settings.cell == "lstm" else zeros

    def hidden(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Top-layer hidden state after each event. ``inputs``: (B, T, 4) integer rows."""
        x = sum(emb(inputs[..., i]) for i, emb in enumerate(self.embed))
        out, state = self.rnn(self.drop(x), state)
        return self.drop(out), state

    def heads(self, h: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """Logits for each field, in FIELD order (pitch, offset, duration, velocity).

        ``targets`` (B, T, 4) are the next events; with conditional heads their earlier fields
        (in HEAD_ORDER) condition the later heads (teacher forcing).
        """
        hs = self.settings.hidden_size
        pre = self.head_hidden(h)
        logits: list[torch.Tensor | None] = [None] * len(HEAD_ORDER)
        for k, field in enumerate(HEAD_ORDER):
            z = pre[..., k * hs : (k + 1) * hs]
            if self.settings.conditional_heads:
                for j in range(k):
                    z = z + self.cond[f"{k}_{j}"](targets[..., HEAD_ORDER[j]])
            logits[field] = self.head_out[k](F.relu(z))
        return logits  # type: ignore[return-value]

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, state: State | None = None) -> tuple[list[torch.Tensor], State]:
        h, state = self.hidden(inputs, state)
        return self.heads(h, targets), state


def event_losses(logits: list[torch.Tensor], targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each field, stacked in FIELD order: shape (4,) for "mean"/"sum",
    (4, B, T) for "none". The training loss is their sum: the NLL of the whole event."""
    per_field = [
        F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[..., i].reshape(-1), reduction=reduction)
        for i, lg in enumerate(logits)
    ]
    if reduction == "none":
        return torch.stack([p.reshape(targets.shape[:-1]) for p in per_field])
    return torch.stack(per_field)

