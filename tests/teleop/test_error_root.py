"""One root for the errors a person can fix: each is printed as its one line, never as an
'unexpected' error with a hint to rerun with --debug."""

from __future__ import annotations

import pytest

from calibration.records import CalibrationError
from rigs.cameras.base import CameraError
from rigs.cameras.codec import CodecError
from rigs.dynamixel.bus import BusError
from rigs.errors import UserError
from rigs.pedal import PedalError
from rigs.spec import RigSpecError
from rigs.virtual.launcher import VirtualRigError
from teleop.episode.reader import EpisodeReadError
from teleop.errors import TeleopError
from teleop.user_errors import describe
from ui.keys import KeymapError


@pytest.mark.parametrize(
    "error",
    [RigSpecError, BusError, CameraError, CodecError, PedalError, VirtualRigError,
     CalibrationError, TeleopError, KeymapError],
)  # fmt: skip
def test_each_expected_error_is_a_user_error_and_prints_as_its_line(error):
    assert issubclass(error, UserError)
    assert describe(error("port /dev/x: gone; plug it back in")) == (
        "port /dev/x: gone; plug it back in"
    )


def test_an_episode_read_error_prints_as_its_line(tmp_path):
    exc = EpisodeReadError(tmp_path / "e.mcap", "damaged")
    assert isinstance(exc, UserError) and "unexpected" not in describe(exc)


def test_anything_else_is_unexpected_and_says_how_to_see_more():
    assert describe(KeyError("x")).startswith("unexpected KeyError")


def test_a_motor_hardware_error_crosses_the_control_pipe_whole():
    import pickle

    from rigs.dynamixel.bus import MotorHardwareError
    from teleop.control.messages import Fault

    sent = Fault(MotorHardwareError("left_follower motor 3: overload", 3, 0x20), "left_follower",
                 "follower")  # fmt: skip
    got = pickle.loads(pickle.dumps(sent))
    assert isinstance(got.error, MotorHardwareError)
    assert (got.error.motor_id, got.error.bits, str(got.error)) == (3, 0x20, str(sent.error))
    assert (got.arm, got.role) == ("left_follower", "follower")
