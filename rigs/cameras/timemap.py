"""Map a camera's own clock to the host's monotonic clock.

Every frame gives a pair (device time, host receipt time). Receipt = capture + transport
delay, and the delay is never negative, so ``receipt - device`` over many frames has its
lower envelope at ``offset + smallest delay``. We track that envelope: it follows a device
clock that runs fast at once (the envelope falls) and one that runs slow through a small
allowed upward creep (``max_drift_ppm``). The capture estimate is the device time plus that
offset, i.e. the capture time as the host would have seen it with the least delay ever seen.
"""

from __future__ import annotations


class DeviceClockMapper:
    """Online device→host time mapping; one per camera stream."""

    def __init__(self, max_drift_ppm: float = 200.0):
        self.max_drift = max_drift_ppm * 1e-6
        self._offset_ns: float | None = None
        self._last_receipt_ns = 0
        self.samples = 0

    @property
    def offset_ns(self) -> int | None:
        return None if self._offset_ns is None else int(self._offset_ns)

    def observe(self, device_ns: int, receipt_ns: int) -> int:
        """Add one frame's pair and return its capture estimate on the host clock."""
        observed = float(receipt_ns - device_ns)
        if self._offset_ns is None:
            self._offset_ns = observed
        else:
            elapsed = max(0, receipt_ns - self._last_receipt_ns)
            allowed = self._offset_ns + self.max_drift * elapsed
            self._offset_ns = min(allowed, observed)
        self._last_receipt_ns = receipt_ns
        self.samples += 1
        return min(receipt_ns, int(device_ns + self._offset_ns))
