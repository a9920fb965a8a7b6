#!/usr/bin/env bash
# Fetch the musculoskeletal model used by `gaitforce label` (gait14dof22musc from the osim-rl sdist) into
# ~/.cache/gaitforce/models (or $GAITFORCE_CACHE/models). The model file is never committed to the project.
set -euo pipefail
time python -c "from gaitforce.physics.model import model_file; print(model_file())"
