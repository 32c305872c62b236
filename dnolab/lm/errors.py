"""The errors a DNO run raises for problems the user can fix, in one family.

``dnolab dno`` prints any :class:`DNOError` as one line and exits with status 2; every other
exception is a bug and keeps its traceback. Each message names the problem and the fix.
This module imports nothing, so configs and the CLI can use it without loading torch.
"""


class DNOError(Exception):
    """Base of the errors whose message tells the user what to change."""


class DNOInputError(DNOError, ValueError):
    """Bad input to a DNO run: a prompt set, a model, a judge's output, a setting."""


class ConfigError(DNOInputError):
    """A config that cannot describe a run; the message names the key and the fix."""


class CorruptRunError(DNOError, RuntimeError):
    """The run folder is inconsistent; the message says what is wrong and how to recover."""


class InvalidJudgmentsError(DNOInputError):
    """The judge could not decide too many comparisons to trust a result built on them."""
