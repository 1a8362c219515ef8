"""Keep each thread's alternate signal stack valid while OpenVINO's CPU plugins come and go (Linux).

OpenVINO's CPU plugin (``ov::intel_cpu::Plugin``, 2023 to at least 2026.4) gives the thread that creates it a
new alternate signal stack (``sigaltstack``; an ``mmap`` of ``AT_MINSIGSTKSZ + SIGSTKSZ`` bytes, sized for AMX's
larger signal frames) and remembers the one it replaced. When the plugin is destroyed it puts the remembered
stack back if its own is still the thread's current one, then unmaps its own. Every ``ov.Core`` loads its own
plugin, so two plugins released in creation order (A, B created; A released, then B) put the thread back on
A's stack, which is already unmapped. The next signal handled on that thread (CPython installs every Python
signal handler with ``SA_ONSTACK``: torch's DataLoader SIGCHLD handler, SIGINT, SIGTERM...) then kills the
process with SIGSEGV, the kernel being unable to write the signal frame (no handler runs, faulthandler stays
silent), or, when the address has been mapped again meanwhile, the frame overwrites whatever lives there.

:func:`pin` gives the calling thread a stack that calibnet owns and never frees (one per thread, 64 KiB or more;
every plugin created before the call then sees, when it is destroyed, a current stack that is not its own: it
only unmaps its own and restores nothing). :func:`guard` runs a block that may create a CPU plugin (opening a
model, asking the CPU's properties, NNCF's quantization) and pins at its end, also when it raises. A program that
creates its own ``ov.Core`` objects beside calibnet's can call :func:`pin` after creating them. Elsewhere than
Linux both do nothing (OpenVINO's plugin only touches the signal stack on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SignalStack", "current", "guard", "pin", "pinned"]

_LINUX = sys.platform.startswith("linux")
_SS_DISABLE = 2  # stack_t.ss_flags: no alternate stack
_PROT_RW, _MAP_PRIVATE_ANONYMOUS = 0x3, 0x22
_AT_MINSIGSTKSZ = 51  # getauxval key: the kernel's minimum signal frame size (Linux 5.14+; 0 when unknown)


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@dataclass(frozen=True)
class SignalStack:
    """A thread's alternate signal stack: its address, size and ``ss_flags`` (``disabled``: none)."""

    address: int
    size: int
    disabled: bool


_libc = ctypes.CDLL(None, use_errno=True) if _LINUX else None
if _libc is not None:
    _libc.getauxval.restype = ctypes.c_ulong
    _libc.getauxval.argtypes = [ctypes.c_ulong]
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_lock = threading.Lock()
#: native thread id -> (address, size) of its stack: mapped with libc's mmap and never unmapped (no Python object
#: owns it, so the interpreter's shutdown cannot free it under a thread still using it)
_stacks: dict[int, tuple[int, int]] = {}


def _size() -> int:
    assert _libc is not None
    minimum = int(_libc.getauxval(_AT_MINSIGSTKSZ))
    return max(1 << 16, 4 * (minimum + 8192))  # room for several nested frames (AMX state included) and a handler


def current() -> SignalStack | None:
    """The calling thread's alternate signal stack (None off Linux)."""
    if _libc is None:
        return None
    old = _StackT()
    if _libc.sigaltstack(None, ctypes.byref(old)) != 0:
        return None
    return SignalStack(int(old.ss_sp or 0), int(old.ss_size), bool(old.ss_flags & _SS_DISABLE))


def pinned() -> bool:
    """Whether the calling thread is on the stack :func:`pin` gave it."""
    mine, now = _stacks.get(threading.get_native_id()), current()
    return mine is not None and now is not None and not now.disabled and now.address == mine[0]


def pin() -> bool:
    """Put the calling thread on its calibnet-owned alternate signal stack (made on the first call in a thread,
    kept until the process ends); False off Linux or when the kernel refuses."""
    if _libc is None:
        return False
    tid = threading.get_native_id()
    with _lock:
        if tid not in _stacks:
            size = _size()
            address = _libc.mmap(None, size, _PROT_RW, _MAP_PRIVATE_ANONYMOUS, -1, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                return False
            _stacks[tid] = (address, size)
        address, size = _stacks[tid]
    return _libc.sigaltstack(ctypes.byref(_StackT(address, 0, size)), None) == 0


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Run a block that may create an OpenVINO CPU plugin in this thread, then :func:`pin` (see the module doc)."""
    try:
        yield
    finally:
        pin()
