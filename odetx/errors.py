"""Errors that reach the user as one clear line (the CLI maps each to an exit code)."""


class OdetxError(Exception):
    """A user-facing failure; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(OdetxError):
    """Bad configuration: detected before any work starts."""

    exit_code = 2

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class DataError(OdetxError):
    """Missing or unreadable dataset files."""


class CheckpointError(OdetxError):
    """A checkpoint that is missing, corrupt, truncated or untrusted."""


class SolverError(OdetxError):
    """An ODE solve that failed (step budget exceeded, non-finite state)."""


class TrainingError(OdetxError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


class Interrupted(OdetxError):
    """Ctrl-C during training: the message says what was kept and how to resume."""

    exit_code = 130
