"""The language-model half of dnolab: the toy world, judges, sampling, pairs, the DNO loss and
trainer, the iteration loop and its evaluation (notebooks 04–06, and ``dnolab dno``).

Importing the package loads nothing heavy (``dnolab.lm.config`` is plain data); the modules
that load models and datasets quiet their per-call progress bars (see dnolab.lm.data), and the
loop draws its own bars per stage.
"""
