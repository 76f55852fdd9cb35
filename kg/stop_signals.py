"""Stopping signals as exceptions, so that ``finally`` blocks run.

A signal whose default action ends the process at once (SIGTERM from ``kill``, systemd or
``docker stop``; SIGHUP when the terminal or SSH session closes; ...) skips every ``finally``:
a temporary folder, a ``.part`` file or a decrypted bundle would be left behind. Inside
`raising_on_stop_signals` such a signal raises an exception instead, as Ctrl-C (SIGINT) already
does, and the cleanup runs.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Signals whose default action ends the process outright. SIGINT is not here: Python already
# turns it into KeyboardInterrupt.
STOPPING_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


@contextmanager
def raising_on_stop_signals(error: Callable[[int], BaseException]) -> Iterator[list[int]]:
    """Meanwhile a `STOPPING_SIGNALS` signal raises ``error(signum)`` in the main thread; the
    yielded list receives its number. After the first, the others are ignored until the block
    ends, so that a second signal cannot cut the cleanup short. A signal the process ignores
    stays ignored (``nohup`` ignores SIGHUP: a server must outlive the terminal), and so does
    one whose handler was set outside Python. Outside the main thread nothing changes (signals
    are not its to handle). The previous handlers are back when the block ends."""
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        for other in previous:
            signal.signal(other, signal.SIG_IGN)
        received.append(signum)
        raise error(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in STOPPING_SIGNALS:
            current = signal.getsignal(signum)
            if current is not None and current != signal.SIG_IGN:
                previous[signum] = signal.signal(signum, stop)
    except ValueError:  # not the main thread
        pass
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
