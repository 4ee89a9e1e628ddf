#!/usr/bin/env bash
# Set up teleop on a fresh Debian machine (Python 3.11) and run it.
#   bash setup.sh demo   install everything, calibrate and check the virtual rig, record two
#                        episodes on it, inspect one, label it, query the catalog and export
#                        the session as a verified bundle
#   bash setup.sh test   install everything (with a second venv holding LeRobot, to check
#                        LeRobot exports with LeRobot itself), then lint, check layers and
#                        run the test suite
set -euo pipefail
cd "$(dirname "$0")"

need_python() {
  if ! command -v python3 >/dev/null; then
    echo "setup: python3 not found; install Python 3.11 (apt-get install python3 python3-venv)" >&2; exit 1
  fi
  python3 - <<'PY' || { echo "setup: Python 3.11 or newer is required" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
}

need_libusb() {
  # pyrealsense2 links against the system libusb-1.0.
  if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing libusb-1.0-0 (needed by pyrealsense2)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "setup: missing libusb-1.0; run: sudo apt-get install libusb-1.0-0" >&2; exit 1
  fi
}

install() {
  need_python
  need_libusb
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || { echo "setup: cannot create .venv; run: apt-get install python3-venv" >&2; exit 1; }
  fi
  # Reinstall only when the pinned set or the project metadata changed.
  local stamp=.venv/.teleop-installed want
  want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
    echo "$want" > "$stamp"
  fi
}

foxglove_readers() {
  # Foxglove's own TypeScript readers (pinned in tests/foxglove/package-lock.json), so the
  # tests decode episodes the way Foxglove does. Node and npm come from Debian if missing.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing nodejs and npm (for Foxglove's readers in the tests)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
      echo "setup: missing Node.js; run: sudo apt-get install nodejs npm" >&2; exit 1
    fi
  fi
  local stamp=tests/foxglove/node_modules/.teleop-installed want
  want=$(cat tests/foxglove/package.json tests/foxglove/package-lock.json | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    local log
    log=$(mktemp)
    (cd tests/foxglove && npm ci --no-audit --no-fund) >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    rm -f "$log"
    echo "$want" > "$stamp"
  fi
}

lerobot_venv() {
  # A second venv with LeRobot itself (it pins torch and more), so the tests can load a
  # LeRobot export with LeRobot's own dataset class. Rebuilt only when its script changes.
  local stamp=.venv-lerobot/.teleop-installed want
  want=$(sha256sum tests/lerobot_venv.sh | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf .venv-lerobot
    local log
    log=$(mktemp)
    # pip's resolver warns about LeRobot's pins (installed with --no-deps on purpose): the
    # output is shown only if the set-up fails.
    bash tests/lerobot_venv.sh .venv-lerobot >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    rm -f "$log"
    echo "$want" > "$stamp"
    sync
  fi
  export TELEOP_LEROBOT_PYTHON="$PWD/.venv-lerobot/bin/python"
}

case "${1:-}" in
  demo)
    install
    # Calibrate the virtual rig (its scripted hands do the moves), check it, then record.
    .venv/bin/teleop calibrate --rig sim-bimanual --all --yes --operator demo >/dev/null
    .venv/bin/teleop doctor --rig sim-bimanual
    session=$(.venv/bin/teleop record --rig sim-bimanual --operator demo --task pick_place \
      --episodes 2 --seconds 10)
    echo "recorded: $session"
    .venv/bin/teleop inspect "$session/episode_0001.mcap"
    # QA and hand-over: label one episode, query the catalog, export a verified bundle.
    sid=$(basename "$session")
    .venv/bin/teleop label "$session/episode_0001.mcap" --reviewer demo-qa --label success
    .venv/bin/teleop episodes --where "session = '$sid'"
    mkdir -p exports
    .venv/bin/teleop export bundle --where "session = '$sid'" --out "exports/$sid.tar" --quiet
    ;;
  test)
    install
    foxglove_readers
    export QT_QPA_PLATFORM=offscreen
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/lint-imports
    .venv/bin/mypy
    # The real-time promises (torque-off within 100 ms, replay tracking) run first, in a
    # step of their own on a calm machine; then everything else; then the LeRobot venv is
    # made (about 6 GB written) and the LeRobot loading test runs in it.
    .venv/bin/pytest -q -m realtime --ignore=tests/teleop/test_lerobot_loads.py
    .venv/bin/pytest -q -m "not realtime" --ignore=tests/teleop/test_lerobot_loads.py
    lerobot_venv
    .venv/bin/pytest -q tests/teleop/test_lerobot_loads.py
    ;;
  *)
    echo "usage: bash setup.sh demo|test" >&2; exit 2 ;;
esac
