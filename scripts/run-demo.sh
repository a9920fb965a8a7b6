#!/usr/bin/env bash
# The main job on a fresh machine: install, then run the whole chain on the embedded synthetic cohort.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
gaitforce demo --out "${1:-gaitforce-demo}"
