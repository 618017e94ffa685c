"""Where a training process runs: the device (cuda, then mps, else cpu), its CPU threads, and its
place in a distributed run. Under ``torchrun`` (``WORLD_SIZE`` set) each process trains its own
rows of every batch with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 alone writes
and prints; ``all_sum``/``gather``/``barrier`` are the identity in a one-process run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from improv.errors import TrainError
from improv.io.machine import default_threads

# torch is imported inside the functions that use it: `improv --help` stays fast.
if TYPE_CHECKING:  # for the signatures only
    import torch



@dataclass
class Dist:
    """Where this process sits in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, dist: Dist) -> torch.device:
    """``auto``: cuda, then mps, else cpu. Under torchrun each process takes its local GPU."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but torch sees no CUDA GPU")
        if name == "cuda":
            name = f"cuda:{dist.local_rank if dist.enabled else 0}"
    elif name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise TrainError("device 'mps' asked for, but this torch has no MPS support here")
    return torch.device(name)


def set_threads(threads: int, dist: Dist) -> int:
    """CPU threads for torch; 0 = ``system.default_threads``: half the usable cores (CPU affinity),
    shared among the processes of this run on this machine (why not every core: see there)."""
    import torch

    if threads <= 0:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world if dist.enabled else 1))
        threads = default_threads(local)
    torch.set_num_threads(threads)
    return threads


def init_distributed(device_name: str) -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is world 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as td

    dist = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not td.is_initialized():
        use_nccl = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        if use_nccl:
            torch.cuda.set_device(dist.local_rank)
        td.init_process_group("nccl" if use_nccl else "gloo")
    return dist


def all_sum(values: Sequence[float], dist: Dist, device: torch.device) -> list[float]:
    """Sum numbers over all processes (identity in a one-process run)."""
    if not dist.enabled:
        return [float(v) for v in values]
    import torch
    import torch.distributed as td

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def gather(obj: Any, dist: Dist) -> list[Any]:
    """Every process's ``obj`` (a list of one in a one-process run)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as td

        td.barrier()
