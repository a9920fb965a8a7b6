#!/usr/bin/env bash
# The test suite on a fresh machine: install (with test extras and, for the browser test, Debian's
# chromium + chromium-driver where apt is available), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "run-tests: step 1 of 3, set-up (scripts/setup.sh all,test)"
bash scripts/setup.sh "all,test"
echo "run-tests: step 2 of 3, chromium + chromium-driver for the browser tests"
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver) \
        || echo "note: chromium could not be installed; the browser test will be skipped"
else
    echo "  skipped: chromium is installed already, or apt-get / root is not available here"
fi
echo "run-tests: step 3 of 3, pytest $*"
python3 -m pytest "$@"
