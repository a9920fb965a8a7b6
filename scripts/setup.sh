#!/usr/bin/env bash
# Installs gaitforce and what it needs on a fresh machine. torch==2.13.0 first: it is a CPU wheel on disk,
# and the project's range (torch>=2.2,<2.14) then installs nothing more (an unpinned torch is a CUDA build).
# Usage: scripts/setup.sh [EXTRAS]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
python3 -m pip install -q --disable-pip-version-check -e ".[${extras}]"
# the musculoskeletal model of `gaitforce label` and the demo's physics stage, fetched into a cache (never
# committed); tests that need it skip without it
if [[ "${extras}" == *all* || "${extras}" == *physics* ]] && python3 -c "import opensim" 2>/dev/null; then
    bash scripts/fetch-model.sh || echo "setup: model fetch failed; 'gaitforce label' and its OpenSim tests will not run" >&2
fi
