"""The Foxglove review layouts in docs/foxglove are what `teleop layout` makes, and every panel
points at a topic (and a joint) that a recorded episode really has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rigs.spec import load_rig
from teleop import catalog
from teleop.cli import main
from teleop.episode.reader import iter_messages, summarize
from teleop.foxglove_layout import episode_layout_json

DOCS = Path(__file__).parents[2] / "docs" / "foxglove"


@pytest.mark.parametrize("rig", ["sim-bimanual", "aloha-bimanual"])
def test_the_committed_layout_is_what_teleop_layout_prints(
    rig: str, capsys: pytest.CaptureFixture[str]
):
    assert main(["layout", "--rig", rig]) == 0
    printed = capsys.readouterr().out
    assert printed == episode_layout_json(load_rig(rig).spec)
    assert (DOCS / f"teleop-episode-{rig}.json").read_text() == printed, (
        f"docs/foxglove is stale: run `teleop layout --rig {rig} -o "
        f"docs/foxglove/teleop-episode-{rig}.json`"
    )


def panels(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") == "panel" else []
        return found + [p for v in node.values() for p in panels(v)]
    if isinstance(node, list):
        return [p for v in node for p in panels(v)]
    return []


def test_every_panel_of_the_layout_shows_data_of_a_recorded_episode(recorded_root: Path):
    (row,) = catalog.query(recorded_root, "task = 'fold_towel'")
    episode = Path(row["path"])
    topics = summarize(episode).topics
    layout = json.loads((DOCS / "teleop-episode-sim-bimanual.json").read_text())
    names: dict[str, list[str]] = {}
    for m in iter_messages(
        episode, [t for t in topics if t.endswith(("_states", "_targets", "_commands"))]
    ):
        names.setdefault(m.topic, list(m.message.name))

    kinds: dict[str, int] = {}
    for panel in panels(layout["content"]):
        kind, config = panel["panelType"], panel["config"]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "Image":
            assert topics[config["imageMode"]["imageTopic"]].message_count > 0
        elif kind == "Plot":
            for series in config["paths"]:
                topic, index = re.fullmatch(r"(/.+)\.position\[(\d+)\]", series["value"]).groups()
                joint = series["label"].split()[0]
                assert names[topic][int(index)] == joint, series
        elif kind == "StateTransitions":
            assert config["paths"][0]["value"] == "/episode/events.kind"
        elif kind == "RawMessages":
            assert topics[config["topicPath"]].message_count > 0
        elif kind == "DiagnosticsSummary":
            assert topics[config["topicToRender"]].message_count > 0
        else:
            raise AssertionError(f"unexpected panel {kind}")
    # four colour + two depth images; per follower leader-vs-follower and target-vs-command
    assert kinds == {
        "Image": 6, "Plot": 4, "StateTransitions": 1, "RawMessages": 1, "DiagnosticsSummary": 1,
    }  # fmt: skip
