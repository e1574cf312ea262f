#!/usr/bin/env bash
# Every test of the workspace. Tests that need a database exist once per backend, named
# `<test>::sqlite`, `<test>::mysql` and `<test>::postgres` (ship::backend_tests!). The MariaDB
# ones run when TEST_MYSQL_URL is set, the PostgreSQL ones when TEST_PG_URL is set; with
# REQUIRE_MYSQL=1 / REQUIRE_PG=1 (CI) their absence is a failure, never a skip. A test that needs
# both servers is named `<test>::mysql::postgres`: either `--skip` leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
args=()
if [ -z "${TEST_MYSQL_URL:-}" ]; then
  if [ "${REQUIRE_MYSQL:-0}" = 1 ]; then
    echo "test: REQUIRE_MYSQL=1 but TEST_MYSQL_URL is not set" >&2
    exit 1
  fi
  args=(--skip ::mysql)
fi
if [ -z "${TEST_PG_URL:-}" ]; then
  if [ "${REQUIRE_PG:-0}" = 1 ]; then
    echo "test: REQUIRE_PG=1 but TEST_PG_URL is not set" >&2
    exit 1
  fi
  args+=(--skip ::postgres)
fi

# Build every test binary first (a cold build's time depends on the machine, not on the
# tests), then run them: a hung test must not eat the CI budget, so the run is bounded.
"${CARGO:-cargo}" test --workspace --all-features --locked --no-run
status=0
timeout --signal=TERM 25m "${CARGO:-cargo}" test --workspace --all-features --locked -- "${args[@]}" 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 124 ]; then
  echo "test: the test run passed its 25-minute bound (a hung test?)" >&2
fi

sqlite=$(grep -cE '^test .*::sqlite \.\.\. ok$' "$log" || true)
mysql=$(grep -cE '^test .*::mysql \.\.\. ok$' "$log" || true)
both=$(grep -cE '^test .*::mysql::postgres \.\.\. ok$' "$log" || true)
postgres=$(( $(grep -cE '^test .*::postgres \.\.\. ok$' "$log" || true) - both ))
echo
echo "backends: sqlite ran ($sqlite per-backend tests passed)"
if [ -n "${TEST_MYSQL_URL:-}" ]; then
  echo "backends: mariadb ran ($mysql per-backend tests passed) on ${TEST_MYSQL_URL#*@}"
else
  echo "backends: mariadb NOT run — set TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test to run those suites"
fi
if [ -n "${TEST_PG_URL:-}" ]; then
  echo "backends: postgresql ran ($postgres per-backend tests passed) on ${TEST_PG_URL#*@}"
  if [ -n "${TEST_MYSQL_URL:-}" ]; then
    echo "backends: mariadb and postgresql together ran ($both mixed-backend tests passed)"
  fi
else
  echo "backends: postgresql NOT run — set TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres to run those suites"
fi
if [ "$status" -ne 0 ]; then
  echo "test: FAILED (exit $status)" >&2
  exit "$status"
fi
if [ "${REQUIRE_MYSQL:-0}" = 1 ] && [ "$mysql" -eq 0 ]; then
  echo "test: REQUIRE_MYSQL=1 but no MariaDB test passed" >&2
  exit 1
fi
if [ "${REQUIRE_PG:-0}" = 1 ] && [ "$postgres" -eq 0 ]; then
  echo "test: REQUIRE_PG=1 but no PostgreSQL test passed" >&2
  exit 1
fi
if [ "$sqlite" -eq 0 ]; then
  echo "test: no SQLite test ran" >&2
  exit 1
fi
