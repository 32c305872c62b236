"""The language-model half of dnolab: the toy world, judges, sampling, pairs, the DNO loss and
trainer, the iteration loop and its evaluation (notebooks 04 and 05, and ``dnolab dno``).

Importing it quiets the per-call progress bars of datasets and transformers; the loop draws
its own bars per stage.
"""

import datasets as _datasets
from transformers.utils import logging as _hf_logging

_datasets.disable_progress_bars()
_hf_logging.disable_progress_bar()
