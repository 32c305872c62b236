"""Several processes (``torchrun`` / ``accelerate launch``) with the code of one.

The loop shards work by *global* index (prompt batches, prompts), so a prompt gets the same
samples and verdicts whatever the number of processes; results are gathered on every process;
only the main process writes. With one process every helper is a no-op.
"""

from __future__ import annotations


def process_state():
    """accelerate's PartialState (CPU when no GPU is visible)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def my_share(n: int, state) -> list[int]:
    """The global indices 0..n−1 this process works on (round robin)."""
    return [i for i in range(n) if i % state.num_processes == state.process_index]


def gather_dict(local: dict, state) -> dict:
    """The union of every process's ``{index: result}``."""
    if state.num_processes == 1:
        return local
    from accelerate.utils import gather_object

    merged = {}
    for part in gather_object([local]):
        merged.update(part)
    return merged


def exists_everywhere(path, state) -> bool:
    """Whether ``path`` exists, decided by every process before any of them may write it."""
    done = path.exists()
    state.wait_for_everyone()
    return done
