"""``python -m odetx`` and the ``odetx`` console script.

The command-line app imports torch, which takes seconds; a Ctrl-C meanwhile is a
normal way to change one's mind, so it ends with one line and exit 130 like a Ctrl-C
anywhere else. The interrupt is held back until the imports are done: raised inside
torch's C++ initialisation it would abort the interpreter instead.

OpenMP reads how long its threads spin once, when torch loads: the bound
(:func:`odetx.runtime.threads.bound_spin`) is set before the first import of torch.
"""

import signal
import sys

from odetx.runtime.threads import bound_spin


def main() -> None:
    bound_spin()
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from odetx.cli.app import main as run
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("error: interrupted while starting; nothing was written", file=sys.stderr)
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
