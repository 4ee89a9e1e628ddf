"""Robot replay (``teleop replay``): a recorded episode's follower commands sent to a rig.

The rig is opened as recording opens it (the virtual rig process for a virtual rig; the control
process owns the buses). The control loop takes its commands from a
:class:`~teleop.control.trajectory.RecordedTrajectory` instead of the leaders, through the
same safety clamps as teleoperation: a slow approach to the recording's first command, the
recorded commands at their recorded timing, then a hold on the last one. Leaders are read
but not used. Afterwards one line per follower: commands sent, clamp hits, and how far the
followers were from the recorded follower positions at the same moments (RMS and max).
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from rigs.spec import LoadedRig, load_rig
from teleop.control.loop import ArmFault, ControlSample
from teleop.control.process import ControlProcess
from teleop.control.trajectory import APPROACH, HOLD, REPLAY, RecordedTrajectory
from teleop.episode.reader import iter_messages, summarize
from teleop.episode.verify import verify_episode
from teleop.errors import TeleopError
from teleop.recording.preflight import Calibration, load_calibration
from teleop.rig_runtime import RigRuntime
from teleop.session import resolve_data_root

# After the last recorded command the followers hold it this long before the loop stops.
HOLD_S = 0.2
# A command that differs from its target by more than this was changed by a clamp (the step
# clamp's arithmetic alone moves an unclamped value by a few ulps).
_CLAMPED_RAD = 1e-9
_COMMANDS = re.compile(r"^/(?P<arm>[^/]+)/joint_commands$")


class ReplayError(TeleopError):
    """The episode cannot be replayed on this rig, or the replay stopped on a fault."""


@dataclass(frozen=True)
class RecordedEpisode:
    """What a replay needs from an episode file, as arrays."""

    path: Path
    rig_id: str
    rig_sha256: str
    calibration_ids: dict[str, str]
    """Arm name -> the calibration record id the recording used (empty if uncalibrated)."""
    joint_names: dict[str, list[str]]
    """Follower name -> its joint names, as recorded on ``/<follower>/joint_commands``."""
    command_times_ns: np.ndarray
    """log_time of each recorded command (UTC ns), shared by all followers."""
    commands_rad: dict[str, np.ndarray]
    """Follower name -> ``(n, joints)`` commands as written when recording."""
    state_times_ns: dict[str, np.ndarray]
    """Follower name -> log_time of each recorded ``/<follower>/joint_states``."""
    states_rad: dict[str, np.ndarray]
    """Follower name -> ``(m, joints)`` recorded present positions."""


@dataclass(frozen=True)
class ArmReport:
    """One follower's replay: what was sent and how well the follower followed."""

    arm: str
    joint_names: list[str]
    commands_sent: int
    clamp_hits: int
    """Replay cycles in which a safety clamp changed the command."""
    rms_rad: np.ndarray
    """Per joint: RMS of present minus recorded follower position."""
    max_rad: np.ndarray
    """Per joint: the largest absolute difference."""
    compared: int
    """How many readings were compared with the recording."""

    def describe(self) -> str:
        """The report's one line for this arm."""
        if not self.compared:
            return f"{self.arm}: {self.commands_sent} commands sent, {self.clamp_hits} clamp hits"
        worst = int(np.argmax(self.max_rad))
        rms = float(np.sqrt(np.mean(self.rms_rad**2)))
        return (
            f"{self.arm}: {self.commands_sent} commands sent, {self.clamp_hits} clamp hits, "
            f"tracking error RMS {rms:.4f} rad, max {self.max_rad[worst]:.4f} rad "
            f"({self.joint_names[worst]})"
        )


@dataclass(frozen=True)
class ReplayResult:
    """Everything a replay did: the loop's samples, its milestones and the per-arm report."""

    episode: RecordedEpisode
    samples: list[ControlSample]
    milestones: dict[str, int]
    period_s: float
    approach_speed_rad_s: float
    arms: list[ArmReport]

    def approach(self) -> list[ControlSample]:
        """The samples of the approach (from where the followers stood to the first command)."""
        return [
            s
            for s in self.samples
            if self.milestones[APPROACH] <= s.cycle < self.milestones[REPLAY]
        ]


# -- the episode ---------------------------------------------------------------------------


def load_episode(path: Path) -> RecordedEpisode:
    """Read the follower commands and states of an episode file.

    Raises:
        EpisodeReadError: the file is damaged or truncated (the message says to recover it).
        ReplayError: it holds no follower commands.
    """
    path = Path(path)
    summary = summarize(path)
    # Before anything can move: every byte as recorded (the file's own CRCs).
    damage = verify_episode(path)
    if damage is not None:
        raise ReplayError(
            f"{path}: damaged, {damage}; nothing was sent to the robot. Recover what is intact "
            f"with `teleop recover {path}` and replay the copy"
        )
    followers = [m["arm"] for t in summary.topics if (m := _COMMANDS.match(t))]
    if not followers:
        raise ReplayError(f"{path}: no /<follower>/joint_commands topic; nothing to replay")
    topics = [f"/{f}/joint_commands" for f in followers] + [f"/{f}/joint_states" for f in followers]
    names: dict[str, list[str]] = {}
    commands: dict[str, list[np.ndarray]] = {f: [] for f in followers}
    command_times: dict[str, list[int]] = {f: [] for f in followers}
    states: dict[str, list[np.ndarray]] = {f: [] for f in followers}
    state_times: dict[str, list[int]] = {f: [] for f in followers}
    for msg in iter_messages(path, topics):
        arm, kind = msg.topic.split("/")[1:]
        position = np.asarray(msg.message.position, dtype=float)
        if kind == "joint_commands":
            names.setdefault(arm, list(msg.message.name))
            commands[arm].append(position)
            command_times[arm].append(msg.log_time_ns)
        else:
            states[arm].append(position)
            state_times[arm].append(msg.log_time_ns)
    # All followers' commands of one cycle are written together; a file that was cut and
    # recovered may miss the tail of the last cycle, so keep the cycles every follower has.
    n = min(len(c) for c in commands.values())
    if n == 0:
        raise ReplayError(f"{path}: a follower has no recorded commands; nothing to replay")
    for arm, cmds in commands.items():
        bad = [k for k, c in enumerate(cmds[:n]) if not np.isfinite(c).all()]
        if bad:
            t_s = (command_times[arm][bad[0]] - command_times[arm][0]) / 1e9
            raise ReplayError(
                f"{path}: {arm}'s recorded command at {t_s:.2f} s is not a finite position; "
                "nothing was sent to the robot"
            )
    provenance = summary.metadata.get("provenance", {})
    calibration = summary.metadata.get("calibration", {})
    return RecordedEpisode(
        path=path,
        rig_id=provenance.get("rig_id", "?"),
        rig_sha256=provenance.get("rig_sha256", ""),
        calibration_ids={
            k.removesuffix(".id"): v for k, v in calibration.items() if k.endswith(".id")
        },
        joint_names=names,
        command_times_ns=np.asarray(command_times[followers[0]][:n], dtype=np.int64),
        commands_rad={f: np.array(commands[f][:n]) for f in followers},
        state_times_ns={f: np.asarray(state_times[f], dtype=np.int64) for f in followers},
        states_rad={
            f: np.array(states[f], dtype=float).reshape(len(states[f]), len(names[f]))
            for f in followers
        },
    )


def check_compatible(loaded: LoadedRig, episode: RecordedEpisode) -> list[str]:
    """Refuse a rig whose followers or joints differ from the recording's; list warnings.

    Raises:
        ReplayError: other follower arms, or other joints on one of them.
    """
    spec = loaded.spec
    have = {a.name: a.joint_names for a in spec.followers}
    recorded = episode.joint_names
    where = f"{episode.path}: recorded on rig {episode.rig_id}"
    if set(have) != set(recorded):
        raise ReplayError(
            f"{where} with followers {', '.join(sorted(recorded))}; rig {spec.id} has "
            f"{', '.join(sorted(have)) or 'none'}; replay it on a rig with the same follower arms"
        )
    for arm, joints in recorded.items():
        if have[arm] != joints:
            raise ReplayError(
                f"{where}; follower {arm} was recorded with joints {', '.join(joints)}, rig "
                f"{spec.id} has {', '.join(have[arm])}; replay it on a rig with the same joints"
            )
    warnings = []
    if episode.rig_sha256 and episode.rig_sha256 != loaded.sha256:
        warnings.append(
            f"rig file {loaded.source} (sha256 {loaded.sha256[:12]}) is not the one "
            f"{episode.path.name} was recorded with ({episode.rig_sha256[:12]}); replaying anyway"
        )
    return warnings


def _calibration_warnings(
    calibration: Calibration, episode: RecordedEpisode, data_root: Path, rig_id: str
) -> list[str]:
    if not calibration.calibrated:
        return [
            f"no calibration records of rig {rig_id} under {data_root}: joint limits come from "
            "the rig file (pass --data-dir to use the calibrated ranges)"
        ]
    active = {r.target: r.id for r in calibration.records}
    changed = [
        arm
        for arm in episode.joint_names
        if episode.calibration_ids.get(arm) and episode.calibration_ids[arm] != active.get(arm)
    ]
    if not changed:
        return []
    return [
        f"follower {', '.join(changed)} has been recalibrated since {episode.path.name} was "
        "recorded: the recorded servo angles may no longer mean the same pose"
    ]


# -- the replay ----------------------------------------------------------------------------


def _confirm(rig_id: str, approach_speed: float, stdin: TextIO, say: Callable[[str], None]) -> None:
    say(
        f"the followers of rig {rig_id} will move: first to the recording's start pose at "
        f"{approach_speed:g} rad/s, then through the episode; press Enter to start, Ctrl-C to stop"
    )
    if stdin.readline() == "":
        raise ReplayError("stdin closed before the replay was confirmed; pass --yes to skip asking")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def replay_report(
    episode: RecordedEpisode,
    samples: list[ControlSample],
    milestones: dict[str, int],
    speed: float,
) -> list[ArmReport]:
    """Per follower: commands sent and clamp hits during the replay phase, and the tracking
    error of the followers' readings against the recorded follower positions.

    Times on both sides run from the first replayed command; replay times are scaled by
    ``speed`` onto the recording's time line.
    """
    first, hold = milestones[REPLAY], milestones[HOLD]
    replay = [s for s in samples if first <= s.cycle < hold]
    after_first = [s for s in samples if first < s.cycle <= hold]
    start_ns = next(s.command_ns for s in samples if s.cycle == first)
    recorded_start_ns = int(episode.command_times_ns[0])
    reports = []
    for arm, joints in episode.joint_names.items():
        clamped = sum(
            bool(np.any(np.abs(s.commands_rad[arm] - s.targets_rad[arm]) > _CLAMPED_RAD))
            for s in replay
        )
        rec_t = (episode.state_times_ns[arm] - recorded_start_ns) / 1e9
        rec_q = episode.states_rad[arm]
        t = np.array([(s.arms[arm].receipt_ns - start_ns) / 1e9 * speed for s in after_first])
        q = np.array([s.arms[arm].reading.position_rad for s in after_first])
        inside = (t >= rec_t[0]) & (t <= rec_t[-1]) if len(rec_t) else np.zeros(len(t), bool)
        if inside.any():
            expected = np.column_stack(
                [np.interp(t[inside], rec_t, rec_q[:, j]) for j in range(rec_q.shape[1])]
            )
            err = q[inside] - expected
            rms, worst = np.sqrt(np.mean(err**2, axis=0)), np.max(np.abs(err), axis=0)
        else:
            rms = worst = np.zeros(len(joints))
        reports.append(ArmReport(arm, joints, len(replay), clamped, rms, worst, int(inside.sum())))
    return reports


def run_replay(
    *,
    rig: str,
    file: str | Path,
    speed: float = 1.0,
    approach_speed_rad_s: float = 0.3,
    data_dir: str | None = None,
    yes: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    stdin: TextIO | None = None,
    runtime: RigRuntime | None = None,
) -> ReplayResult:
    """Replay ``file`` on ``rig`` and return what happened (see the module docstring).

    ``runtime``: an already open rig to use (the caller closes it); by default the rig is
    opened here, after the file has been checked.

    Raises:
        EpisodeReadError: the file is damaged or truncated.
        ReplayError: the rig does not fit the recording, or a fault stopped the replay.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the followers were left holding.
    """
    say = progress or (lambda line: None)
    if speed <= 0 or approach_speed_rad_s <= 0:
        raise ReplayError("--speed and --approach-speed must be above 0")
    episode = load_episode(Path(file))
    loaded = load_rig(rig)
    spec = loaded.spec
    for line in check_compatible(loaded, episode):
        say(f"warning: {line}")
    data_root = resolve_data_root(data_dir)
    calibration = load_calibration(spec, data_root, allow_uncalibrated=True)
    for line in _calibration_warnings(calibration, episode, data_root, spec.id):
        say(f"warning: {line}")
    if not (yes or spec.virtual):
        _confirm(spec.id, approach_speed_rad_s, stdin or sys.stdin, say)
    rate_hz = float(spec.control_rate_hz)
    trajectory = RecordedTrajectory(
        (episode.command_times_ns - episode.command_times_ns[0]) / 1e9,
        episode.commands_rad,
        period_s=1.0 / rate_hz,
        speed=speed,
        approach_speed_rad_s=approach_speed_rad_s,
    )
    samples: list[ControlSample] = []
    hold_cycles = max(1, round(HOLD_S * rate_hz))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        opened = (
            contextlib.nullcontext(runtime)
            if runtime is not None
            else RigRuntime(loaded, seed=seed, with_cameras=False)
        )
        with opened as runtime:
            control = ControlProcess(
                spec, ports=runtime.ports, rate_hz=rate_hz, sink=lambda s, c: samples.append(s)
            )
            control.start()
            try:
                control.go(calibration.mappings, trajectory)
                say(
                    f"replaying {episode.path.name} ({trajectory.duration_s:.1f} s at speed "
                    f"{speed:g}) on rig {spec.id}"
                )
                while control.fault is None:
                    hold = control.milestones.get(HOLD)
                    latest = control.latest
                    if (
                        hold is not None
                        and latest is not None
                        and latest.cycle >= hold + hold_cycles
                    ):
                        break
                    time.sleep(0.02)
            finally:
                control.stop()  # the followers keep holding their last command
            fault = control.fault
            milestones = dict(control.milestones)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if fault is not None:
        done = (
            f"after {_replayed_s(samples, milestones, speed):.1f} of "
            f"{trajectory.duration_s:.1f} recorded s"
            if REPLAY in milestones
            else "during the approach to the first pose"
        )
        after = (
            "the followers were torqued off"
            if isinstance(fault, ArmFault) and fault.role == "follower"
            else "the followers hold where they were"
        )
        raise ReplayError(f"replay of {episode.path} stopped {done}: {fault}; {after}")
    return ReplayResult(
        episode,
        samples,
        milestones,
        1.0 / rate_hz,
        approach_speed_rad_s,
        replay_report(episode, samples, milestones, speed),
    )


def _replayed_s(samples: list[ControlSample], milestones: dict[str, int], speed: float) -> float:
    first = milestones.get(REPLAY)
    started = [s.start_ns for s in samples if first is not None and s.cycle >= first]
    return (started[-1] - started[0]) / 1e9 * speed if started else 0.0
