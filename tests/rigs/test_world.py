"""The shared world: readers never see half a write, and never hang on a dead writer."""

from __future__ import annotations

import threading

import numpy as np

from rigs.spec import load_rig
from rigs.virtual.world import STUCK_WRITE_S, SharedWorld, WorldLayout
from tests.waiting import wait_until


def test_a_writer_killed_mid_write_does_not_hang_readers():
    world = SharedWorld(WorldLayout.from_spec(load_rig("sim-bimanual").spec), create=True)
    try:
        world.write("left_follower", np.arange(7.0))
        world._array[0] += 1.0  # the writer died between its two counter steps
        got: list[np.ndarray] = []
        threading.Thread(
            target=lambda: got.append(world.read("left_follower")), daemon=True
        ).start()
        wait_until(
            lambda: got,
            "a read of a world whose writer died mid-write",
            timeout_s=10 + STUCK_WRITE_S,
        )
        np.testing.assert_array_equal(got[0], np.arange(7.0))
    finally:
        world.close()
