"""What a resumed run must restore exactly: every random state (torch, numpy, python, CUDA), and
the recurrent state carried from chunk to chunk (zeroed for rows that start a new piece, detached
between steps, moved between devices).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    import torch

    from improv.model.network import State


def reset_rows(state: State | None, reset: np.ndarray, device: torch.device) -> State | None:
    """Zero the carried state of rows that start a new piece at this chunk."""
    import torch

    if state is None:
        return None
    keep = torch.from_numpy(~reset).to(device=device, dtype=torch.float32)[None, :, None]
    if isinstance(state, tuple):
        return tuple(s * keep for s in state)
    return state * keep


def detach(state: State | None) -> State | None:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def random_states(device: torch.device) -> dict[str, Any]:
    import torch

    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_random_states(states: dict[str, Any], device: torch.device) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def state_to_cpu(state: State | None) -> State | None:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach().cpu() for s in state)
    return state.detach().cpu()


def state_to_device(state: State | list[torch.Tensor] | None, device: torch.device) -> State | None:
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(s.to(device) for s in state)
    return state.to(device)
