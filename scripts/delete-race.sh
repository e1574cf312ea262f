#!/usr/bin/env bash
# A delete in one region races an update of the same customer in another, as two real
# regions (release binary, separate processes, SQLite, loopback), under a conflict policy:
#
#   scripts/delete-race.sh lww           # the default: the later update undoes the delete
#   scripts/delete-race.sh delete_wins   # the delete sticks in both regions
#
# eu-west (the broker) creates a customer and pushes it to us-east; then, without syncing,
# eu-west deletes it (204) and us-east updates it a moment later (200); then both sync by hand
# (`regionsync sync run`). Prints what each region answers for the customer and its conflict
# ledger. Ports 18101/18102; everything lives in a temporary folder, removed at the end.
set -euo pipefail
policy=${1:-lww}
bin=${RACE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/regionsync}
[ -x "$bin" ] || { echo "build it first: cargo build --release --bin regionsync -p app" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/a" "$work/b"
cat > "$work/a/region.toml" <<EOF
region_id = "eu-west"
[http]
bind = "127.0.0.1:18101"
[broker]
public_url = "http://127.0.0.1:18101"
[[sync.peers]]
id = "us-east"
[sync.conflict_policy]
customers = "$policy"
EOF
a() { (cd "$work/a" && REGIONSYNC_CONFIG=region.toml "$bin" "$@" 2>/dev/null); }
b() { (cd "$work/b" && REGIONSYNC_CONFIG=region.toml "$bin" "$@" 2>/dev/null); }
credential=$(a broker regions add us-east http://127.0.0.1:18102 | grep '^rsc_')
cat > "$work/b/region.toml" <<EOF
region_id = "us-east"
[http]
bind = "127.0.0.1:18102"
[broker]
enabled = false
url = "http://127.0.0.1:18101"
credential = "$credential"
public_url = "http://127.0.0.1:18102"
[[sync.peers]]
id = "eu-west"
[sync.conflict_policy]
customers = "$policy"
EOF
(cd "$work/a" && REGIONSYNC_CONFIG=region.toml exec "$bin" serve > serve.log 2>&1) & pids+=($!)
until curl -sf http://127.0.0.1:18101/health/ready > /dev/null; do sleep 0.2; done
(cd "$work/b" && REGIONSYNC_CONFIG=region.toml exec "$bin" serve > serve.log 2>&1) & pids+=($!)
until curl -sf http://127.0.0.1:18102/health/ready > /dev/null; do sleep 0.2; done

id=$(curl -s -X POST -H 'Content-Type: application/json' \
  --data '{"tenant_id":"t1","name":"Ada","email":"ada@example.com"}' \
  http://127.0.0.1:18101/api/v1/customers | sed 's/.*"id":"\([^"]*\)".*/\1/')
a sync run --push > /dev/null
echo "policy $policy; customer $id created in eu-west and pushed to us-east"
echo "eu-west DELETE: $(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:18101/api/v1/customers/$id")"
sleep 0.05
echo "us-east PATCH:  $(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
  --data '{"name":"Ada Lovelace"}' "http://127.0.0.1:18102/api/v1/customers/$id")"
a sync run > /dev/null || true
b sync run > /dev/null || true
a sync run --pull > /dev/null || true
for region in eu-west:18101 us-east:18102; do
  name=${region%%:*}
  answer=$(curl -s -w ' %{http_code}' "http://127.0.0.1:${region##*:}/api/v1/customers/$id")
  echo "$name GET: ${answer##* } ${answer% *}"
done
echo "eu-west conflicts:"; a conflicts list | sed 's/^/  /'
echo "us-east conflicts:"; b conflicts list | sed 's/^/  /'
