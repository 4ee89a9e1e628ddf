"""Colours and style sheets shared by the screens (one place, so status colours agree)."""

from __future__ import annotations

GREEN = "#2e7d32"
AMBER = "#b26a00"
RED = "#c62828"
GREEN_BG = "#e3f4e4"
AMBER_BG = "#fff2d6"
RED_BG = "#fde0e0"
GREY = "#616161"

TITLE_STYLE = "font-size: 20pt; font-weight: bold;"
ERROR_STYLE = f"color: {RED}; font-family: monospace;"
BANNER_STYLE = f"background: {RED}; color: white; font-size: 13pt; font-weight: bold; padding: 8px;"
WARN_BANNER_STYLE = f"background: {AMBER_BG}; color: black; font-size: 12pt; padding: 6px;"

# The state label: colour says at a glance whether the robot is being recorded.
STATE_STYLE = {
    "idle": f"background: {GREY}; color: white;",
    "armed": f"background: {GREEN}; color: white;",
    "recording": f"background: {RED}; color: white;",
    "finalizing": f"background: {AMBER}; color: white;",
    "resetting": f"background: {AMBER}; color: white;",
    "decide": "background: #1565c0; color: white;",
}
STATE_BASE = "font-size: 22pt; font-weight: bold; padding: 6px 14px; border-radius: 6px;"
