"""Starting the server on Windows: as a child (Windows has no exec to hand the process over),
with the console's stop keys passed on while it runs, and its exit code given back.

Also used off Windows for a Windows installation under Wine, where the child gets the POSIX
stop signals instead.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional

from ..errors import FipsbootError


def launch(argv: List[str], env: Dict[str, str]) -> int:
    """Run the server and return its exit code; a server killed by signal N gives 128+N, as
    a shell reports it."""
    with _SignalForwarder() as forwarder:
        child = _start(argv, env)
        forwarder.attach(child)
        code = _wait(child)
    return 128 - code if code < 0 else code


def _forwarded_signals() -> List[int]:
    names = ["SIGINT", "SIGBREAK"]
    if sys.platform != "win32":
        names.append("SIGTERM")  # a supervisor stopping us must stop the server, not orphan it
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def _forward(child: subprocess.Popen, signum: int) -> None:
    if child.poll() is not None:
        return
    if sys.platform == "win32":
        # The child leads its own process group, and GenerateConsoleCtrlEvent does not deliver
        # CTRL_C_EVENT to a group (Microsoft's docs; the group also starts with Ctrl-C
        # disabled). CTRL_BREAK_EVENT does reach it, so both keys arrive as Ctrl-Break. A
        # Ctrl-Break typed at a shared console also reaches it directly: it may come twice.
        os.kill(child.pid, signal.CTRL_BREAK_EVENT)
    else:
        child.send_signal(signum)


class _SignalForwarder:
    """Passes the stop signals we get on to the server while it runs."""

    def __init__(self):
        self.child: Optional[subprocess.Popen] = None
        self.pending: List[int] = []
        self.previous: Dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarder:
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            for signum in _forwarded_signals():
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def attach(self, child: subprocess.Popen) -> None:
        self.child = child
        for signum in self.pending:  # pressed while the server was being started
            _forward(child, signum)
        self.pending.clear()

    def _handle(self, signum, frame) -> None:
        if self.child is None:
            self.pending.append(signum)
        else:
            _forward(self.child, signum)


def _start(argv: List[str], env: Dict[str, str]) -> subprocess.Popen:
    if sys.platform == "win32":
        options = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        # Its own session, like the new process group on Windows: a terminal's Ctrl-C then
        # reaches the server once, through us, not twice.
        options = {"start_new_session": True}
    try:
        return subprocess.Popen(argv, env=env, **options)
    except OSError as e:
        raise FipsbootError(f"cannot start {argv[0]}: {e.strerror or e}",
                            "check the server's command after -- (its path, and that this "
                            "account may run it)") from None


def _wait(child: subprocess.Popen) -> int:
    while True:
        try:
            # A timeout, because a wait without one on Windows holds off Python's signal
            # handlers (the forwarding) until the child is gone.
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue
