"""Errors that reach the user as one clear line (the CLI maps each to an exit code)."""


class OdetxError(Exception):
    """A user-facing failure; ``exit_code`` is what the CLI exits with.

    ``every_rank``: in a multi-process run every process meets this failure alike
    (bad config, missing data, a loss summed over processes), so only rank 0 says it.
    """

    exit_code = 1
    every_rank = False

    def in_command(self, command: str) -> str:
        """The line ``odetx COMMAND`` prints for this failure (most say the same anywhere)."""
        return str(self)


class ConfigError(OdetxError):
    """Bad configuration: detected before any work starts."""

    exit_code = 2
    every_rank = True

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


def _from_worker(message: str) -> str:
    """A DataLoader worker's failure comes back to the main process as "Caught DataError in
    DataLoader worker process N." and the worker's traceback; its last line is the message."""
    first = message.split("\n", 1)[0]
    if not (first.startswith("Caught ") and "DataLoader worker process" in first):
        return message
    last = message.rstrip().rsplit("\n", 1)[-1]
    return last.partition(": ")[2] or last


class DataError(OdetxError):
    """Missing or unreadable dataset files."""

    every_rank = True

    def __init__(self, message: str = "") -> None:
        super().__init__(_from_worker(message))


class DataInputError(DataError):
    """Data that cannot be used as given (an image folder with no images, class folders that
    differ between splits, a file that does not decode under ``data.strict``): a usage error,
    like a bad config."""

    exit_code = 2


class ModelFileError(OdetxError):
    """A model file (a checkpoint, a run directory or an export) that is missing, damaged,
    or of a kind the command cannot take."""

    every_rank = True


class CheckpointError(ModelFileError):
    """A checkpoint that is missing, corrupt, truncated or untrusted."""


class SolverError(OdetxError):
    """An ODE solve that failed (step budget exceeded, non-finite state)."""


class TrainingError(OdetxError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


class Interrupted(OdetxError):
    """Ctrl-C during training: the message says what was kept and how to resume."""

    exit_code = 130
