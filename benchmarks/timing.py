"""A Trainer callback that times every optimizer step, shared by the trainer benchmarks."""

import time

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall-clock seconds of each training step, in ``times``."""

    def __init__(self):
        self.times, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)
