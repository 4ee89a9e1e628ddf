"""Screens and formats without a rig: sign-in lists, pre-flight colours, keys, fault advice."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from teleop.doctor import CheckResult, Status
from teleop.operators import OperatorsFileError, load_operators
from teleop.tasks import TasksFileError, load_tasks
from ui.keys import Keymap, KeymapError
from ui.preflight import PreflightScreen
from ui.signin import SignInScreen
from ui.station import advice


def test_operators_and_tasks_load(tmp_path: Path):
    (tmp_path / "operators.toml").write_text(
        '[[operators]]\nid = "op7"\nname = "Ada"\n[[operators]]\nid = "op8"\nname = "Bo"\n'
    )
    (tmp_path / "tasks.toml").write_text(
        '[[tasks]]\nname = "fold"\ntarget_episodes = 3\nepisode_s = 12.5\n'
    )
    assert [o.id for o in load_operators(tmp_path)] == ["op7", "op8"]
    (task,) = load_tasks(tmp_path)
    assert (task.target_episodes, task.episode_s, task.reset_s) == (3, 12.5, 0.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[operators]]\nid = "op 7"\nname = "Ada"\n', "field 'operators[0].id': use letters"),
        (
            '[[operators]]\nid = "a"\nname = "A"\n[[operators]]\nid = "a"\nname = "B"\n',
            "listed twice",
        ),
        ("[[operators]\n", "not valid TOML"),
        ('[[operators]]\nid = "a"\n', "field 'operators[0].name'"),
    ],
)
def test_operators_errors_are_one_line(tmp_path: Path, text: str, expected: str):
    (tmp_path / "operators.toml").write_text(text)
    with pytest.raises(OperatorsFileError) as err:
        load_operators(tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path / "operators.toml") in str(err.value)


def test_task_errors_name_the_field(tmp_path: Path):
    (tmp_path / "tasks.toml").write_text(
        '[[tasks]]\nname = "x"\ntarget_episodes = 0\nepisode_s = 5\n'
    )
    with pytest.raises(TasksFileError, match=r"field 'tasks\[0\].target_episodes'"):
        load_tasks(tmp_path)
    (tmp_path / "tasks.toml").unlink()
    with pytest.raises(TasksFileError, match="no task list"):
        load_tasks(tmp_path)


def test_sign_in_without_lists_says_how_to_create_them(qtbot, tmp_path: Path):
    screen = SignInScreen(tmp_path)
    qtbot.addWidget(screen)
    assert not screen.proceed.isEnabled()
    text = screen.problems.text()
    assert "operators.toml: no operator list" in text and '[[operators]]\nid = "op7"' in text
    assert "tasks.toml: no task list" in text
    (tmp_path / "operators.toml").write_text('[[operators]]\nid = "op7"\nname = "Ada"\n')
    (tmp_path / "tasks.toml").write_text(
        '[[tasks]]\nname = "fold"\ntarget_episodes = 3\nepisode_s = 10\nreset_s = 4\n'
    )
    qtbot.mouseClick(screen.reload, Qt.MouseButton.LeftButton)
    assert screen.proceed.isEnabled() and screen.problems.isHidden()
    with qtbot.waitSignal(screen.signed_in) as sig:
        qtbot.mouseClick(screen.proceed, Qt.MouseButton.LeftButton)
    choice = sig.args[0]
    assert (choice.operator.id, choice.task.name, choice.task.reset_s) == ("op7", "fold", 4.0)


def test_preflight_failures_block_recording_and_come_first(qtbot):
    screen = PreflightScreen()
    qtbot.addWidget(screen)
    ok = CheckResult(Status.OK, "bus port", "left_leader", measured="/dev/pts/3")
    warn = CheckResult(Status.WARN, "camera fps", "low", measured="20.0 fps", fix="use USB 3")
    fail = CheckResult(
        Status.FAIL, "calibration", "left_follower", measured="no record",
        fix="run `teleop calibrate --rig sim-bimanual --arm left_follower`",
    )  # fmt: skip
    screen.set_results([ok, warn, fail])
    assert not screen.record_button.isEnabled()
    assert screen.table.item(0, 0).text() == "FAIL"
    assert screen.table.item(0, 4).text().startswith("run `teleop calibrate")
    assert screen.table.item(1, 0).text() == "WARN" and screen.table.item(2, 0).text() == "OK"
    assert "1 check failed" in screen.status.text()
    screen.set_results([ok, warn])
    assert screen.record_button.isEnabled() and "1 warning" in screen.status.text()


def test_keymap_options():
    keys = Keymap().with_options(["start_stop=Space,F13", "keep=PgDown"])
    assert keys.label("start_stop") == "Space / F13"
    assert [s.toString() for s in keys.sequences("keep")] == ["PgDown"]
    with pytest.raises(KeymapError, match="ACTION one of"):
        Keymap().with_options(["jump=J"])


def test_fault_advice_gives_cause_and_fix():
    cause, fix = advice("fault: left_follower: bus /dev/pts/4 does not answer")
    assert cause.startswith("left_follower") and "End session" in fix
    cause, fix = advice("disk_low: 0.40 GiB free on /data")
    assert "0.40 GiB" in cause and "Free space" in fix
