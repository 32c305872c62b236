"""dnolab: Direct Nash Optimization (Rosset et al. 2024, arXiv:2404.03715), taught and implemented.

The notebooks in ``notebooks/`` tell the story; this package holds the code they share.
Submodules are imported on demand so that ``import dnolab`` stays fast (torch is only
loaded by the language-model parts).
"""

import os as _os

# OpenMP worker threads that spin while they wait make torch on a busy small machine many times
# slower: on the 2-vCPU build machine with the other core busy, a 135M model's forward pass took
# 17 s on two spinning threads, 8.8 s on one, 7.5 s on two passive ones. Set before torch is
# imported (dnolab imports it lazily); an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
