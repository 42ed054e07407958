#!/usr/bin/env bash
# `make test`'s end-to-end step: the LocalExecutor and the CeleryExecutor deployments of `make e2e` at
# once, each on its own stack (scripts/e2e/run.sh with E2E_EXECUTORS), as `make chaos` runs its two.
# Most of a round is waiting on the scheduler and the sandbox's latency, so two stacks share the two
# cores with little slowdown. Each line is prefixed with its executor; fails when either fails.
set -uo pipefail
cd "$(dirname "$0")/../.."

E2E_EXECUTORS=local scripts/e2e/run.sh "$@" > >(sed -u 's/^/[e2e local] /') 2>&1 &
local_pid=$!
E2E_EXECUTORS=celery scripts/e2e/run.sh "$@" > >(sed -u 's/^/[e2e celery] /') 2>&1 &
celery_pid=$!
wait "$local_pid"; local_rc=$?
wait "$celery_pid"; celery_rc=$?
echo "e2e: LocalExecutor exited $local_rc, CeleryExecutor exited $celery_rc"
[ "$local_rc" -eq 0 ] && [ "$celery_rc" -eq 0 ]
