#!/usr/bin/env bash
# The main job on a fresh machine: install, then run the whole chain on the embedded synthetic cohort.
# Usage: scripts/run-demo.sh [OUT]   (default: gaitforce-demo); the report: OUT/index.html and OUT/index.md
set -euo pipefail
cd "$(dirname "$0")/.."
echo "run-demo: step 1 of 2, set-up (scripts/setup.sh all)"
bash scripts/setup.sh all
echo "run-demo: step 2 of 2, gaitforce demo --out ${1:-gaitforce-demo} (7 stages, each announced below)"
gaitforce demo --out "${1:-gaitforce-demo}"
