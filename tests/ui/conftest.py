"""Qt tests run offscreen: no display is needed (the test command sets it too)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
