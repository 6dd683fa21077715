"""Ctrl-C and SIGTERM in the long loops (training steps, generation chunks): the first signal is a flag the loop
checks at its borders, where it saves or closes what it wrote; a second ends the process at once, with one line.

No handler here raises: an exception raised from a signal handler lands wherever Python is, and inside a callback
(JAX runs one at every garbage collection, which any allocation can start) it is swallowed with an "Exception
ignored" traceback and the program goes on. Ending the process cannot be swallowed.
"""

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# What a second signal says, of every first signal a loop caught, latest last. Process-wide as handlers are: the
# framegen process's own handler (``for_the_process``) reads it once the loop has ended and the process is unwinding.
_stopping: list[Callable[[int], str]] = []


def exit_at_once(message: str, exit_code: int) -> NoReturn:
    """Print ``Error: message`` on stderr and end the process with ``exit_code`` now, without unwinding.

    What is on disk stays as a kill -9 would leave it: checkpoints and finished files are renamed into place
    atomically, a partial WAV's header counts its whole chunks, a run lock left behind is taken over as stale."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # a third signal while this runs must not print the line twice
    _flush()
    # rich's progress hides the cursor and leaves its line open; its close would restore both
    tty = "\x1b[?25h\n" if os.isatty(2) else ""
    try:
        os.write(2, f"{tty}Error: {message}\n".encode())
    finally:
        os._exit(exit_code)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the signal came in the middle of a write to it: the line still goes out
            pass


@contextmanager
def stop_flag(second: Callable[[int], str]) -> Iterator[list[int]]:
    """Within: SIGINT/SIGTERM append their number to the yielded list, which the loop checks at its borders to stop
    there; a second signal calls ``exit_at_once(second(signum), 128 + signum)`` (``second`` says what is kept and
    how to go on). The previous handlers come back on leaving. Outside the main thread (a sweep worker) nothing is
    installed and the list stays empty."""
    caught: list[int] = []

    def handler(signum, frame):
        if caught:  # the user really wants out, wherever the loop is: a save, a compile, a callback
            exit_at_once(second(signum), 128 + signum)
        caught.append(signum)
        _stopping.append(second)

    try:
        old = {s: signal.signal(s, handler) for s in SIGNALS}
    except ValueError:  # not the main thread: no handlers, nothing to restore
        yield caught
        return
    try:
        yield caught
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def for_the_process() -> None:
    """The framegen command's handlers outside the loops (a library caller keeps Python's own).

    Before any stop, Ctrl-C raises KeyboardInterrupt as Python's handler does (loading and compiling stop there) and
    SIGTERM ends the process as by default. After a first signal (caught by a loop, or that KeyboardInterrupt), one
    more while the process unwinds and prints its error ends it at once, rather than raising into click's printing
    or an atexit callback, where it would print a traceback; ``end_if_stopped`` then skips the teardown."""

    def handler(signum, frame):
        if _stopping:
            exit_at_once(_stopping[-1](signum), 128 + signum)
        if signum == signal.SIGTERM:  # the default: ended by the signal, exit status 143 in a shell
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _stopping.append(lambda s: f"stopped at once by a second {signal.Signals(s).name}")
        raise KeyboardInterrupt

    for s in SIGNALS:
        signal.signal(s, handler)


def stop_requested() -> bool:
    """Whether this process took a stop signal: a loop's first one, or the framegen command's Ctrl-C outside them."""
    return bool(_stopping)


def end_if_stopped(exit_code: int) -> None:
    """For the framegen process, its command over and its error printed: after a stop signal, end it now.

    The interpreter's teardown has nothing left to do for it and would put Python's handlers away first: a second
    Ctrl-C there would kill the process by the signal, without a word (status -2 to a parent instead of 130)."""
    if stop_requested():
        _flush()
        os._exit(exit_code)
