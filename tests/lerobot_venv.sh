#!/usr/bin/env bash
# Make a separate venv with LeRobot, for tests/teleop/test_lerobot_loads.py, which loads a
# LeRobot export with LeRobot's own LeRobotDataset. Never install this into the project's venv:
# LeRobot pins torch, torchvision and more.
#
#   tests/lerobot_venv.sh [VENV_DIR]        (default: .venv-lerobot)
#   export TELEOP_LEROBOT_PYTHON=VENV_DIR/bin/python
#
# Why these pins (x86_64, Python 3.11):
# - lerobot 0.4.4 is the newest release for Python 3.11 (0.5+ needs 3.12). It reads and
#   writes codebase v3.0 datasets.
# - It asks for torch<2.11, which on PyPI is a multi-GB CUDA build that would be downloaded.
#   torch 2.14.1 + torchvision 0.29.1 are on this machine's local wheel index (pip takes them
#   from disk); the local CPU build of torch 2.13.0 cannot be used because PyPI's torchvision
#   fails to import beside it ("operator torchvision::nms does not exist"). So lerobot is
#   installed with --no-deps and its dataset-loading dependencies are listed here.
# - torchvision 0.29 no longer decodes video, so LeRobot decodes with torchcodec (0.14 is
#   built for torch 2.14), which loads the system's FFmpeg libraries (Debian: libav*).
set -euo pipefail

VENV=${1:-.venv-lerobot}
PYTHON=${PYTHON:-python3.11}

ffmpeg_libs="libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4"
if ! ldconfig -p | grep -q 'libavcodec\.so'; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $ffmpeg_libs >/dev/null
    else
        echo "lerobot_venv: torchcodec needs FFmpeg's libraries; run: sudo apt-get install $ffmpeg_libs" >&2
        exit 1
    fi
fi

"$PYTHON" -m venv "$VENV"
pip="$VENV/bin/pip"
"$pip" install --quiet torch==2.14.1 torchvision==0.29.1
"$pip" install --quiet --no-deps lerobot==0.4.4
"$pip" install --quiet torchcodec==0.14.0 "datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" \
    "accelerate>=1.10,<2" "draccus==0.10.0" "av>=15,<16" "jsonlines>=4,<5" "packaging>=24.2,<26" \
    "deepdiff>=7.0.1,<9" "termcolor>=2.4,<4" "einops>=0.8,<0.9" pandas pyarrow

HF_HUB_OFFLINE=1 "$VENV/bin/python" -c "
import torchcodec.decoders
from lerobot.datasets.lerobot_dataset import LeRobotDataset, CODEBASE_VERSION
print('lerobot venv ready, dataset codebase', CODEBASE_VERSION)
"
echo "export TELEOP_LEROBOT_PYTHON=$(cd "$VENV" && pwd)/bin/python"
