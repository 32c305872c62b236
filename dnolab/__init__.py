"""dnolab: Direct Nash Optimization (Rosset et al. 2024, arXiv:2404.03715), taught and implemented.

The notebooks in ``notebooks/`` tell the story; this package holds the code they share.
Submodules are imported on demand so that ``import dnolab`` stays fast (torch is only
loaded by the language-model parts).
"""

__version__ = "0.1.0"
