"""Serving until the admin stops it: Ctrl-C, or SIGTERM (`kill`, a service manager), both clean."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

TICK_SECONDS = 0.25


def until_stopped(tick: Callable[[], None] = lambda: None) -> None:
    """Return on Ctrl-C or SIGTERM; call `tick` every TICK_SECONDS meanwhile (to report what happened)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(TICK_SECONDS):
            tick()
    except KeyboardInterrupt:
        pass
    tick()
