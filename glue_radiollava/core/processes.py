"""Several processes (``accelerate launch`` or ``torchrun``) sharing one job: who am I, how many."""

from __future__ import annotations

import os

from .errors import RadioLlavaError


def process_state(device: str | None = None):
    """accelerate's PartialState (one process without ``accelerate launch``).

    Without CUDA (or with ``device="cpu"``) it is asked for CPU processes (gloo), so
    ``accelerate launch``/``torchrun`` shard on CPU machines too. A launch of several processes
    that accelerate does not see as such would make them all write the same files: refused.
    """
    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and state.num_processes != world:
        raise RadioLlavaError(f"launched as {world} processes, but accelerate sees {state.num_processes}; "
                              "launch with `accelerate launch` (or torchrun) on a supported setup")
    return state
