#!/usr/bin/env bash
# `make e2e`: Airflow for real (scheduler, API server, DAG processor, triggerer; LocalExecutor, then
# CeleryExecutor with two workers) on PostgreSQL and Redis, against the API sandbox. See docs/e2e.md.
#
# Installs PostgreSQL and Redis when missing; where it cannot (no root or no apt-get) it fails, and
# says so loudly as its last lines. Everything runs under one mktemp directory, removed at the end
# unless E2E_KEEP=1; the trap ends every process group the harness recorded there, even when pytest
# itself was killed. Extra arguments go to pytest (e.g. -k budget).
set -uo pipefail
cd "$(dirname "$0")/../.."

loud() {
    local line="!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    printf '\n%s\n!!! %s\n%s\n' "$line" "$*" "$line" >&2
}

scripts/ensure-debian-packages.sh postgresql redis-server
status=$?
if [ "$status" -eq 3 ]; then
    loud "make e2e FAILED: PostgreSQL and Redis are missing and this machine cannot install them (needs root and apt-get). Install the Debian packages postgresql and redis-server, then run make e2e. The end-to-end Airflow checks did NOT run."
    exit 1
elif [ "$status" -ne 0 ]; then
    loud "make e2e FAILED: scripts/ensure-debian-packages.sh exited with $status; the end-to-end Airflow checks did NOT run."
    exit 1
fi

E2E_ROOT="$(mktemp -d -t clientify-e2e.XXXXXX)"
export E2E_ROOT
chmod 755 "$E2E_ROOT"  # PostgreSQL runs as another user and must reach its data directory below
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The harness stops its services itself; this is the net for a pytest that was killed outright.
    for pgids in "$E2E_ROOT"/*/pgids; do
        [ -f "$pgids" ] || continue
        while read -r pgid; do
            [ -n "$pgid" ] && kill -TERM -- "-$pgid" 2>/dev/null
        done <"$pgids"
        sleep 2
        while read -r pgid; do
            [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null
        done <"$pgids"
    done
    if [ "${E2E_KEEP:-0}" = "1" ]; then
        echo "e2e: kept $E2E_ROOT (E2E_KEEP=1)" >&2
    else
        rm -rf "$E2E_ROOT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
.venv/bin/python -m pytest -p no:cacheprovider -q -rA --timeout "${E2E_TIMEOUT_S:-1800}" tests/e2e "$@"
rc=$?
echo "make e2e: pytest exited $rc after $(( $(date +%s) - started ))s"
exit "$rc"
