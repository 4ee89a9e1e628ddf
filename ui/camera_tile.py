"""A camera's live preview on the record screen, and the frame-to-pixmap conversion it and the
replay's camera views share."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

PREVIEW_W, PREVIEW_H = 400, 300


def frame_to_pixmap(color: np.ndarray, width: int, height: int) -> QPixmap:
    """A BGR uint8 frame scaled (fast, aspect kept) into ``width`` x ``height``."""
    h, w = color.shape[:2]
    if not color.flags["C_CONTIGUOUS"]:
        color = np.ascontiguousarray(color)
    image = QImage(color.data, w, h, color.strides[0], QImage.Format.Format_BGR888)
    # scaled() copies, so the frame's buffer is not referenced after this returns.
    scaled = image.scaled(
        width,
        height,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,
    )
    return QPixmap.fromImage(scaled)


class CameraTile(QFrame):
    """One camera's live preview with its name and the fps the preview sees."""

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(name)
        self.title.setStyleSheet("font-weight: bold;")
        self.image = QLabel("waiting for frames…")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(PREVIEW_W // 2, PREVIEW_H // 2)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image.setStyleSheet("background: #202020; color: #bbbbbb;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.image, 1)
        self.last_number: int | None = None
        self.shown = 0  # frames put on screen, for the preview-rate test

    def show_frame(self, color: np.ndarray, frame_number: int) -> None:
        if frame_number == self.last_number:
            return  # nothing new since the last tick: skip the conversion
        self.last_number = frame_number
        size = self.image.size()
        self.image.setPixmap(frame_to_pixmap(color, max(size.width(), 16), max(size.height(), 16)))
        self.shown += 1
