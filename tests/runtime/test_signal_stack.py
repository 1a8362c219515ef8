"""The signal-stack guard (runtime/backends/signal_stack.py) without OpenVINO: pin() puts a thread on a stack calibnet
owns, one per thread; guard() pins after its block, also when the block raises; a signal is handled on it. The
OpenVINO sequence it exists for (and its upstream crash) is in test_openvino.py."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

import pytest

from calibnet.runtime.backends import signal_stack

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack guard: Linux only")


def _foreign_stack(buffer: ctypes.Array[ctypes.c_char]) -> None:
    """Put this thread on ``buffer``, as OpenVINO's CPU plugin does with its own stacks."""
    stack = signal_stack._StackT(ctypes.addressof(buffer), 0, len(buffer))
    assert signal_stack._libc.sigaltstack(ctypes.byref(stack), None) == 0


def test_pin_gives_the_thread_its_own_stack_and_a_signal_runs_on_it():
    handled = []
    old = signal.signal(signal.SIGUSR1, lambda *a: handled.append(signal_stack.pinned()))
    try:
        assert signal_stack.pin() and signal_stack.pinned()
        now = signal_stack.current()
        assert now is not None and not now.disabled and now.size >= 1 << 16
        os.kill(os.getpid(), signal.SIGUSR1)
        assert handled == [True]
        assert signal_stack.pin() and signal_stack.current() == now  # made once per thread, then reused
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_each_thread_gets_a_stack_of_its_own():
    seen = {}

    def worker():
        seen["before"] = signal_stack.pinned()
        signal_stack.pin()
        seen["after"], seen["stack"] = signal_stack.pinned(), signal_stack.current()

    signal_stack.pin()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["before"] is False and seen["after"] is True
    assert seen["stack"].address != signal_stack.current().address and signal_stack.pinned()


def test_guard_pins_after_a_foreign_stack_even_when_the_block_raises():
    foreign = ctypes.create_string_buffer(1 << 16)
    with signal_stack.guard():
        _foreign_stack(foreign)
        assert signal_stack.current().address == ctypes.addressof(foreign) and not signal_stack.pinned()
    assert signal_stack.pinned()
    with pytest.raises(RuntimeError, match="compile failed"), signal_stack.guard():
        _foreign_stack(foreign)
        raise RuntimeError("compile failed")
    assert signal_stack.pinned()  # never left on a stack someone else may free
