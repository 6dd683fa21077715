"""Signals in the loops: the first is a flag, a second ends the process at once with one line wherever it lands,
never a traceback. A signal is raised from inside a GC callback (where JAX's runs) and from an atexit callback: an
exception raised there is swallowed with "Exception ignored" and the program goes on."""

import signal
import subprocess
import sys

from framegen import interrupts


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_first_signal_is_a_flag_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    with interrupts.stop_flag(lambda s: "unused") as caught:
        signal.raise_signal(signal.SIGTERM)  # nothing raised: the loop goes on to its border
        assert caught == [signal.SIGTERM] and interrupts.stop_requested()
    assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


def test_a_second_signal_inside_a_gc_callback_ends_the_process_with_one_line():
    r = python("""
import gc, signal
from framegen import interrupts
with interrupts.stop_flag(lambda s: f"second {signal.Signals(s).name}: resume with X") as caught:
    signal.raise_signal(signal.SIGINT)
    print("flagged", caught, flush=True)
    gc.callbacks.append(lambda phase, info: signal.raise_signal(signal.SIGINT))
    gc.collect()
    print("went on")
""")
    assert (r.returncode, r.stdout, r.stderr) == (130, "flagged [2]\n",
                                                  "Error: second SIGINT: resume with X\n")


def test_a_signal_after_the_loop_stopped_ends_the_teardown_at_once():
    """The framegen process after a loop caught SIGTERM: another signal in an atexit callback exits 130 with the
    loop's line; before any stop, Ctrl-C raises KeyboardInterrupt as usual and a second one exits at once."""
    r = python("""
import atexit, signal, sys
from framegen import interrupts
interrupts.for_the_process()
with interrupts.stop_flag(lambda s: "kept what was saved") as caught:
    signal.raise_signal(signal.SIGTERM)
print("stopped", caught, flush=True)
atexit.register(signal.raise_signal, signal.SIGINT)
sys.exit(143)
""")
    assert (r.returncode, r.stdout, r.stderr) == (130, "stopped [15]\n",
                                                  "Error: kept what was saved\n")
    r = python("""
import atexit, signal, sys
from framegen import interrupts
interrupts.for_the_process()
try:
    signal.raise_signal(signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted", flush=True)
atexit.register(signal.raise_signal, signal.SIGINT)
""")
    assert (r.returncode, r.stdout, r.stderr) == (130, "interrupted\n", "Error: stopped at once by a second SIGINT\n")


def test_sigterm_before_any_stop_ends_the_process_by_the_signal():
    r = python("""
import signal, time
from framegen import interrupts
interrupts.for_the_process()
signal.raise_signal(signal.SIGTERM)
time.sleep(5)
print("went on")
""")
    assert r.returncode == -signal.SIGTERM and r.stdout == r.stderr == ""


def test_a_stopped_process_ends_before_the_teardown():
    """Python puts its handlers away before tearing modules down: a second Ctrl-C there would kill the process
    by SIGINT. A stopped framegen process ends once its error is printed."""
    r = python("""
import signal
from framegen import interrupts
interrupts.end_if_stopped(1)  # nothing stopped it: goes on
with interrupts.stop_flag(lambda s: "unused") as caught:
    signal.raise_signal(signal.SIGTERM)
print("stopped", end="")
interrupts.end_if_stopped(143)
print("went on")
""")
    assert (r.returncode, r.stdout, r.stderr) == (143, "stopped", "")
