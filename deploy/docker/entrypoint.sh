#!/bin/sh
# Every Chorus container starts here, then runs its command.
set -eu

# Prometheus' multiprocess mode (webapp/metrics.py): each process writes its values in this
# directory and a scrape adds them up. Files left by an earlier run would be counted again.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR}"
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR}"
fi

exec "$@"
