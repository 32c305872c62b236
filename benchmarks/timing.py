"""What the benchmarks share: a Trainer callback that times every optimizer step, and the
CPU's name for their reports (the same code runs at very different speeds on different CPUs)."""

import platform
import time
from pathlib import Path

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall-clock seconds of each training step, in ``times``."""

    def __init__(self):
        self.times, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def cpu_name() -> str:
    """The CPU's model name (Linux), or the architecture where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
