#!/usr/bin/env bash
# The test suite on a fresh machine: install (with test extras and, for the browser test, Debian's
# chromium + chromium-driver where apt is available), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "all,test"
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
        || echo "note: chromium could not be installed; the browser test will be skipped"
fi
python3 -m pytest "$@"
