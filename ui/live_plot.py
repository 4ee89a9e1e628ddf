"""The record screen's live joint plot: one follower arm and its leader over the last
``HISTORY_S`` seconds.

Cheap to redraw by design (it repaints several times a second while recording): fixed axes,
bare curves, no dashed lines. The replay has its own plot around the playhead
(:class:`ui.replay.ArmPlot`).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

HISTORY_S = 10.0  # seconds of history the plot shows (and the record screen keeps)


class ArmPlot(pg.PlotWidget):
    """Leader (mapped to the follower's angles, thin) vs follower (thick), per joint."""

    def __init__(self, follower: str, leader: str, joints: list[str], y_range: tuple[float, float]):
        super().__init__()
        self.setBackground("w")
        self.setTitle(f"{follower}: thick = follower, thin = {leader}", color="k", size="10pt")
        self.setLabel("left", "rad")
        self.setLabel("bottom", "s")
        # Fixed ranges (the joints' limits): no autorange work per redraw, axes that do not
        # jump, and a curve near the edge means a joint near its limit.
        self.disableAutoRange()
        self.setXRange(-HISTORY_S, 0, padding=0)
        self.setYRange(*y_range, padding=0.05)
        self.showGrid(x=True, y=True, alpha=0.3)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        legend = self.addLegend(offset=(-5, 5), labelTextColor="k", colCount=4)
        legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.follower_curves = []
        self.leader_curves = []
        # Bare PlotCurveItems: PlotDataItem's extra machinery made each redraw several times
        # more expensive, and nothing here needs symbols, downsampling or log axes.
        for i, joint in enumerate(joints):
            colour = pg.intColor(i, hues=len(joints), values=1, maxValue=200)
            solid = pg.PlotCurveItem(pen=pg.mkPen(colour, width=2), skipFiniteCheck=True)
            # Thin and translucent rather than dashed: Qt's raster engine draws dashed
            # polylines several times slower, and this repaints five times a second.
            thin = pg.mkColor(colour)
            thin.setAlpha(150)
            dashed = pg.PlotCurveItem(pen=pg.mkPen(thin, width=1), skipFiniteCheck=True)
            self.addItem(solid)
            self.addItem(dashed)
            legend.addItem(solid, joint)
            self.follower_curves.append(solid)
            self.leader_curves.append(dashed)

    def update_history(self, t_s: np.ndarray, leader: np.ndarray, follower: np.ndarray) -> None:
        """``t_s`` seconds relative to now (<= 0); ``leader``/``follower`` shaped (n, joints)."""
        for j, curve in enumerate(self.follower_curves):
            curve.setData(t_s, follower[:, j], skipFiniteCheck=True)
        for j, curve in enumerate(self.leader_curves):
            curve.setData(t_s, leader[:, j], skipFiniteCheck=True)
