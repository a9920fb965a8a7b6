#!/usr/bin/env bash
# Fetch the musculoskeletal models used by `gaitforce label` into ~/.cache/gaitforce/models (or
# $GAITFORCE_CACHE/models): gait14dof22musc from the osim-rl sdist (the default model) and Rajagopal 2015 from the
# nimblephysics wheel (`--model rajagopal2015`; the wheel is downloaded, never installed). Model files are never
# committed to the project.
set -euo pipefail
python -c "
from gaitforce.physics.model import MODELS, model_file
for name in MODELS:
    print(name, model_file(name))
"
