"""A named daemon thread with a stop flag: the shape shared by the loop and capture threads."""

from __future__ import annotations

import threading


class Worker:
    """Subclasses implement ``_run`` and poll ``self._stop``; ``stop()`` sets it and joins."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
