"""Rig files: presets load, and every kind of mistake names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigs.spec import RigSpecError, load_rig, parse_rig, preset_names

PRESET = load_rig("sim-bimanual")


def test_presets_ship_and_load():
    assert {"sim-bimanual", "aloha-bimanual"} <= set(preset_names())
    spec = PRESET.spec
    assert [a.name for a in spec.leaders] == ["left_leader", "right_leader"]
    assert [a.name for a in spec.followers] == ["left_follower", "right_follower"]
    assert all(len(a.joints) == 7 and a.gripper == "gripper" for a in spec.arms)
    assert [c.view for c in spec.cameras] == ["overhead", "low", "left_wrist", "right_wrist"]
    aloha = load_rig("aloha-bimanual").spec
    assert aloha.untested_on_hardware and not aloha.virtual
    assert all(a.port.startswith("/dev/serial/by-id/") for a in aloha.arms)


def test_rig_by_path(tmp_path: Path):
    f = tmp_path / "mine.toml"
    f.write_text(PRESET.toml_text)
    loaded = load_rig(str(f))
    assert loaded.spec == PRESET.spec and loaded.source == str(f)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(RigSpecError, match="unknown rig preset 'nope'.*sim-bimanual"):
        load_rig("nope")


def test_missing_file():
    with pytest.raises(RigSpecError, match="missing.toml: no such rig file"):
        load_rig("/tmp/definitely/missing.toml")


def test_toml_syntax_error_names_file():
    with pytest.raises(RigSpecError, match=r"bad\.toml: not valid TOML"):
        parse_rig("id = [unclosed", "bad.toml")


def _edit(old: str, new: str) -> str:
    assert old in PRESET.toml_text
    return PRESET.toml_text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        (
            "control_rate_hz = 50",
            "control_rate_hz = 5000",
            "control_rate_hz",
            "less than or equal to 1000",
        ),
        ("control_rate_hz = 50", 'control_rate_hz = "fast"', "control_rate_hz", "valid number"),
        (
            'model = "XM430-W350"',
            'model = "XM999"',
            "arms[0].joints[0]",
            "unknown Dynamixel model 'XM999'",
        ),
        ('role = "leader"', 'role = "boss"', "arms[0].role", "'leader' or 'follower'"),
        ("id = 1,", "id = 300,", "arms[0].joints[0].id", "less than or equal to 252"),
        ("min_rad = -1.6", "min_rad = 1.7", "arms[0].joints[0]", "must be below max_rad"),
        ('follows = "left_leader"', 'follows = "nobody"', "(top level)", "not a leader arm"),
        (
            'driver = "synthetic"',
            'driver = "kinect"',
            "cameras[2].driver",
            "'synthetic', 'realsense' or 'opencv'",
        ),
        ("fps = 30", "fps = 0", "cameras[0].fps", "greater than or equal to 1"),
        (
            "virtual = true",
            "virtual = false",
            "(top level)",
            "use port 'virtual' but the rig is not virtual",
        ),
        (
            "max_step_rad = 0.15",
            "max_step_rad = 0.15\nmax_speed = 3",
            "safety.max_speed",
            "Extra inputs",
        ),
        ("id = 2, shadow_id = 3", "id = 2, shadow_id = 1", "arms[0]", "motor ids repeat"),
        # Safety values a rig file must not be able to set.
        ("max_step_rad = 0.15", "max_step_rad = inf", "safety.max_step_rad", "finite number"),
        ("max_step_rad = 0.15", "max_step_rad = nan", "safety.max_step_rad", "finite number"),
        (
            "max_step_rad = 0.15",
            "max_step_rad = 3.0",
            "safety.max_step_rad",
            "less than or equal to 0.5",
        ),
        (
            "max_step_rad = 0.15",
            "max_step_rad = 0.15\njoint_limit_margin_rad = 10",
            "(top level)",
            "joint_limit_margin_rad 10.0 leaves no room on left_follower.waist",
        ),
        ("min_rad = -1.6", "min_rad = -inf", "arms[0].joints[0].min_rad", "finite number"),
        (
            "gripper_current_limit = 300",
            "gripper_current_limit = 5000",
            "arms[2]",
            "above the XM430-W350's maximum Current Limit (1193)",
        ),
        (
            "gripper_current_limit = 300",
            "gripper_current_limit = 65836",
            "arms[2].gripper_current_limit",
            "less than or equal to 65535",
        ),
        ("baudrate = 1000000", "baudrate = 1000001", "arms[0]", "not one a Dynamixel X servo"),
        ("fps = 30", "fps = 30\nstall_timeout_s = inf", "cameras[0].stall_timeout_s", "finite"),
    ],
)
def test_invalid_field_names_file_field_and_expectation(old, new, field, expected):
    with pytest.raises(RigSpecError) as info:
        parse_rig(_edit(old, new), "rig.toml")
    msg = str(info.value)
    assert msg.startswith(f"rig.toml: field '{field}'"), msg
    assert expected in msg
    assert "\n" not in msg


def test_motor_id_0_repeated_as_a_shadow_id_0_is_a_duplicate():
    text = _edit("id = 1, model", "id = 0, model").replace(
        "id = 2, shadow_id = 3", "id = 2, shadow_id = 0", 1
    )
    with pytest.raises(
        RigSpecError, match=r"field 'arms\[0\]'.*motor ids repeat on one bus: \[0, 0,"
    ):
        parse_rig(text, "rig.toml")


def test_missing_required_field():
    text = PRESET.toml_text.replace('id = "sim-bimanual"\n', "", 1)
    with pytest.raises(RigSpecError, match=r"field 'id': Field required"):
        parse_rig(text, "rig.toml")


def test_follower_joints_must_match_leader():
    text = _edit('name = "waist"', 'name = "base"')  # first leader's first joint renamed
    with pytest.raises(RigSpecError, match="same joints"):
        parse_rig(text, "rig.toml")
