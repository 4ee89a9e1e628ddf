"""Run engine calls off the GUI thread and get their results back as queued Qt signals.

Every call that may touch a disk or a device (opening the rig, pre-flight checks, starting
the session, finishing an episode file) goes through :class:`EngineWorker`. It has one
thread, so engine calls run one after another in the order the operator asked for them —
a Stop pressed while Start is still opening its file is not lost and not reordered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]


class EngineWorker(QObject):
    """A single engine thread; ``submit(fn, on_done, on_error)`` calls back on the GUI thread."""

    # One tuple (callbacks, result, exception), never a bare None argument: PySide6 queued
    # connections mishandle the refcount of None passed as an ``object`` argument, which
    # crashed the interpreter at exit ("deallocating None").
    _finished = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-engine")
        self._pending = 0
        # Queued explicitly: the signal is emitted on the engine thread and the slot must run
        # on the GUI thread, where this object lives.
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        """True while a submitted call has not yet reported back."""
        return self._pending > 0

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Done | None = None,
        on_error: Failed | None = None,
    ) -> Future[Any]:
        """Run ``fn()`` on the engine thread; then ``on_done(result)`` or ``on_error(exc)``."""
        self._pending += 1
        callbacks = (on_done, on_error)

        def run() -> Any:
            try:
                result = fn()
            except BaseException as exc:  # reported to the GUI, never lost in the pool
                self._finished.emit((callbacks, None, exc))
                raise
            self._finished.emit((callbacks, result, None))
            return result

        return self._pool.submit(run)

    @Slot(object)
    def _deliver(self, payload: tuple[tuple[Done | None, Failed | None], Any, Any]) -> None:
        self._pending -= 1
        (on_done, on_error), result, exc = payload
        if exc is not None:
            if on_error is not None:
                on_error(exc)
            else:
                log.error("engine call failed: %s", exc, exc_info=exc)
        elif on_done is not None:
            on_done(result)

    def shutdown(self, wait: bool = True) -> None:
        """Finish queued calls (``wait``) and stop the thread."""
        self._pool.shutdown(wait=wait)
