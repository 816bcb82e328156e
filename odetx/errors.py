"""Errors that reach the user as one clear line (the CLI maps each to an exit code)."""


class OdetxError(Exception):
    """A user-facing failure; ``exit_code`` is what the CLI exits with.

    ``every_rank``: in a multi-process run every process meets this failure alike
    (bad config, missing data, a loss summed over processes), so only rank 0 says it.
    """

    exit_code = 1
    every_rank = False


class ConfigError(OdetxError):
    """Bad configuration: detected before any work starts."""

    exit_code = 2
    every_rank = True

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class DataError(OdetxError):
    """Missing or unreadable dataset files."""

    every_rank = True


class CheckpointError(OdetxError):
    """A checkpoint that is missing, corrupt, truncated or untrusted."""

    every_rank = True


class SolverError(OdetxError):
    """An ODE solve that failed (step budget exceeded, non-finite state)."""


class TrainingError(OdetxError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


class Interrupted(OdetxError):
    """Ctrl-C during training: the message says what was kept and how to resume."""

    exit_code = 130
