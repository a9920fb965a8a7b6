#!/usr/bin/env bash
# Installs gaitforce and what it needs on a fresh machine, printing each step and pip's own progress (a cold
# install downloads ~1 GB and takes 2-10 min; quiet output would look hung). torch==2.13.0 first: it is a CPU
# wheel on disk, and the project's range (torch>=2.2,<2.14) then installs nothing more (an unpinned torch is a
# CUDA build).
# Usage: scripts/setup.sh [EXTRAS]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
t0=$SECONDS
step() { echo "setup [$(( SECONDS - t0 )) s] $*"; }
step "1/3 torch==2.13.0 (CPU wheel) ..."
python3 -m pip install --disable-pip-version-check --progress-bar on "torch==2.13.0"
step "2/3 gaitforce and its extras [${extras}] (pip install -e) ..."
python3 -m pip install --disable-pip-version-check --progress-bar on -e ".[${extras}]"
# the musculoskeletal model of `gaitforce label` and the demo's physics stage, fetched into a cache (never
# committed); tests that need it skip without it
if [[ "${extras}" == *all* || "${extras}" == *physics* ]] && python3 -c "import opensim" 2>/dev/null; then
    step "3/3 OpenSim models into ~/.cache/gaitforce/models (~85 MB the first time) ..."
    bash scripts/fetch-model.sh || echo "setup: model fetch failed; 'gaitforce label' and its OpenSim tests will not run" >&2
else
    step "3/3 OpenSim models: skipped (opensim not installed or not asked for)"
fi
step "done"
