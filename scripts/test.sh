#!/usr/bin/env bash
# Set up everything on a fresh machine, then lint and run the tests.
#   scripts/test.sh                 # the whole suite
#   scripts/test.sh tests/kafka -x  # arguments go to pytest
# The Kafka jars are fetched with Maven the first time a test needs the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

# Two cores shared by torch, the Kafka JVM and pytest: one compute thread each,
# and threads that sleep rather than spin while they wait.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

scripts/check

status=0
python -m pytest -q "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: pytest collected no tests: that counts as a failure" >&2
fi
exit "$status"
