#!/usr/bin/env bash
# Set up a fresh machine: Fashion-MNIST (Debian package), a virtualenv in .venv with torch, timm and dynamixer.
# Usage: bash scripts/setup.sh        (idempotent; re-running only checks what is there)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || {
    $SUDO apt-get update >/dev/null 2>&1 || true
    $SUDO apt-get install -y dataset-fashion-mnist >/dev/null || echo "warning: could not install dataset-fashion-mnist; pass --data-dir with the four idx files"
  }
fi

PY=${PYTHON:-python3}
export PIP_NO_CACHE_DIR=1   # nothing kept beside the venv: disk can be short on a fresh machine
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# pip -q still prints one "Location ... is ignored" warning per missing local index page: drop those lines only.
pip_install() { python -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
python -c "import torch, torchvision" 2>/dev/null || pip_install torch==2.14.1 torchvision==0.29.1
pip_install -e ".[test,plots]"
python -c "import dynamixer, timm, torch; print(f'dynamixer {dynamixer.__version__}, timm {timm.__version__}, torch {torch.__version__}, cuda {torch.cuda.is_available()}')"
