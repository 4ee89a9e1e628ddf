"""A Foxglove layout for reviewing a teleop episode of a given rig.

Built with the Foxglove SDK's own layout types (``foxglove.layouts``), so the JSON is what
Foxglove itself defines. Panels: every camera's colour image; per follower, its leader's and
its own joint positions, and the targets mapped from the leader against the commands actually
written (after the safety clamps); the episode's events on a timeline and as messages; the
diagnostics summary; and a second tab with the depth images.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import foxglove.layouts as fl

from rigs.spec import Arm, RigSpec
from teleop.episode.schemas import DIAGNOSTICS_TOPIC, EVENTS_TOPIC


def _split(
    direction: Literal["row", "column"],
    contents: Sequence[fl.Content],
    weights: list[float] | None = None,
) -> fl.SplitContainer:
    weights = weights or [1.0] * len(contents)
    return fl.SplitContainer(
        direction=direction,
        items=[
            fl.SplitItem(proportion=w, content=c) for w, c in zip(weights, contents, strict=True)
        ],
    )


def _grid(panels: Sequence[fl.Content]) -> fl.Content:
    """Panels in rows of two."""
    if len(panels) == 1:
        return panels[0]
    rows = [panels[i : i + 2] for i in range(0, len(panels), 2)]
    return _split("column", [r[0] if len(r) == 1 else _split("row", r) for r in rows])


def _image(topic: str, title: str) -> fl.ImagePanel:
    return fl.ImagePanel(
        title=title, config=fl.ImageConfig(image_mode=fl.ImageModeConfig(image_topic=topic))
    )


def _pair_plot(
    title: str, dashed: tuple[str, str], solid: tuple[str, str], joints: list[str]
) -> fl.PlotPanel:
    """One plot: per joint, the ``dashed`` topic's value against the ``solid`` one's.

    Each of ``dashed``/``solid`` is ``(topic, label)``; ``joints`` are the joint names in the
    order both topics list them."""
    series = []
    styles: tuple[tuple[tuple[str, str], Literal["dashed", "solid"]], ...] = (
        (dashed, "dashed"),
        (solid, "solid"),
    )
    for i, joint in enumerate(joints):
        for (topic, label), style in styles:
            series.append(
                fl.PlotSeries(
                    value=f"{topic}.position[{i}]",
                    label=f"{joint} {label}",
                    line_style=style,
                    timestamp_method="headerStamp",
                )
            )
    return fl.PlotPanel(title=title, config=fl.PlotConfig(paths=series))


def _follower_plots(rig: RigSpec, follower: Arm) -> list[fl.Content]:
    leader = rig.arm(follower.follows) if follower.follows else None
    joints = follower.joint_names
    plots: list[fl.Content] = []
    if leader is not None:
        plots.append(
            _pair_plot(
                f"{follower.name}: leader (dashed) vs follower",
                (f"/{leader.name}/joint_states", "leader"),
                (f"/{follower.name}/joint_states", "follower"),
                joints,
            )
        )
    plots.append(
        _pair_plot(
            f"{follower.name}: target (dashed) vs command sent",
            (f"/{follower.name}/joint_targets", "target"),
            (f"/{follower.name}/joint_commands", "command"),
            joints,
        )
    )
    return plots


def episode_layout(rig: RigSpec) -> fl.Layout:
    """The review layout for episodes recorded on ``rig``."""
    cameras = [_image(f"/cameras/{c.name}/color/compressed", c.name) for c in rig.cameras]
    plots = [p for f in rig.followers for p in _follower_plots(rig, f)]
    events = _split(
        "row",
        [
            fl.StateTransitionsPanel(
                title="episode events",
                config=fl.StateTransitionsConfig(
                    paths=[fl.StateTransitionsSeries(value=f"{EVENTS_TOPIC}.kind", label="event")]
                ),
            ),
            fl.RawMessagesPanel(
                title="events",
                config=fl.RawMessagesConfig(topic_path=EVENTS_TOPIC, expansion="all"),
            ),
            fl.DiagnosticsSummaryPanel(
                title="diagnostics",
                config=fl.DiagnosticsSummaryConfig(
                    topic_to_render=DIAGNOSTICS_TOPIC, sort_by_level=True
                ),
            ),
        ],
    )
    review: list[fl.Content] = []
    if cameras:
        review.append(_grid(cameras))
    if plots:
        review.append(_split("column", plots))
    main = _split("column", [_split("row", review), events], [3.0, 1.0]) if review else events
    tabs = [fl.TabItem(title="episode", content=main)]
    depth = [_image(f"/cameras/{c.name}/depth", f"{c.name} depth") for c in rig.cameras if c.depth]
    if depth:
        tabs.append(fl.TabItem(title="depth", content=_grid(depth)))
    return fl.Layout(content=fl.TabContainer(tabs=tabs))


def episode_layout_json(rig: RigSpec) -> str:
    """The layout as indented JSON (what ``teleop layout`` prints and docs/foxglove holds)."""
    return json.dumps(json.loads(episode_layout(rig).to_json()), indent=2) + "\n"
