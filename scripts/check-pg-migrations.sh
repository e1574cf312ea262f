#!/usr/bin/env bash
# Check migrations/postgres against the real servers (ADR 0018):
#
#   1. the migration folders of postgres/, mysql/ and sqlite/ are the same, each with up.sql and
#      down.sql;
#   2. in a scratch PostgreSQL database, every up.sql in order, each in one transaction with
#      ON_ERROR_STOP (and each migration redone once: up, down, up — as `diesel migration redo`);
#      in a scratch MariaDB database, every mysql/ up.sql; a few identical rows are planted on
#      both along the way (the backfills and the data move of the migrations run on them);
#   3. the two schemas agree: tables and columns (names — the check the issue asks for), and
#      also each column's type class, nullability, identity and default, every index (name,
#      unique, columns), the named CHECKs, MariaDB's TEXT/MEDIUMTEXT byte limits as CHECKs;
#      every PostgreSQL character column is COLLATE "C"; the planted rows read back the same,
#      in the same ORDER BY order (byte-wise, no pad);
#   4. every down.sql in reverse order leaves no table, index or sequence behind;
#   5. the scratch databases are dropped, whatever happened.
#
# Exits non-zero on any difference; prints one summary line. Servers: PostgreSQL 15 at
# PGHOST:PGPORT (127.0.0.1:5432, user postgres, trust auth) and MariaDB at
# MYSQL_HOST:MYSQL_PORT (127.0.0.1:3306, root, MYSQL_PWD if any) — DATABASES.md says how to
# start them.
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1} MYSQL_PORT=${MYSQL_PORT:-3306} MYSQL_USER=${MYSQL_USER:-root}
export PGHOST PGPORT PGUSER PGCLIENTENCODING=UTF8 PGOPTIONS="--client-min-messages=warning"
scratch="regionsync_pgcheck_$$_$(date +%s)"
tmp=$(mktemp -d)
name="check-pg-migrations"

pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
my() {
  mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" --batch \
    --skip-column-names --default-character-set=utf8mb4 \
    --init-command="SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,PIPES_AS_CONCAT', time_zone = '+00:00'" \
    "$@"
}
fail() {
  echo "$name: FAILED — $*" >&2
  exit 1
}
cleanup() {
  pg -d postgres -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null 2>&1 || true
  my -e "DROP DATABASE IF EXISTS \`$scratch\`" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

pg_version=$(pg -d postgres -c "SHOW server_version" 2>"$tmp/err") ||
  fail "PostgreSQL does not answer at $PGHOST:$PGPORT as $PGUSER: $(head -1 "$tmp/err")" \
    "(start it: pg_ctlcluster --skip-systemctl-redirect 15 main start)"
my_version=$(my -e "SELECT VERSION()" 2>"$tmp/err") ||
  fail "MariaDB does not answer at $MYSQL_HOST:$MYSQL_PORT as $MYSQL_USER: $(head -1 "$tmp/err")"

# 1. Same migrations in every tree.
dirs() { find "migrations/$1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort; }
for tree in mysql sqlite; do
  if ! diff <(dirs "$tree") <(dirs postgres) >"$tmp/dirs.diff"; then
    fail "migrations/$tree and migrations/postgres differ (< $tree, > postgres):
$(cat "$tmp/dirs.diff")"
  fi
done
mapfile -t migrations < <(dirs postgres)
[ ${#migrations[@]} -gt 0 ] || fail "no migrations found"
for m in "${migrations[@]}"; do
  for f in up.sql down.sql; do
    [ -s "migrations/postgres/$m/$f" ] || fail "migrations/postgres/$m/$f is missing or empty"
  done
done

pg -d postgres -c "CREATE DATABASE $scratch" >/dev/null || fail "cannot create the PostgreSQL scratch database"
my -e "CREATE DATABASE \`$scratch\` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin" ||
  fail "cannot create the MariaDB scratch database"

# Run one migration file on PostgreSQL in one transaction.
pg_file() {
  pg -d "$scratch" --single-transaction -f "migrations/postgres/$1/$2" >/dev/null 2>"$tmp/err" ||
    fail "postgres/$1/$2: $(grep -m1 -i error "$tmp/err" || head -1 "$tmp/err")"
}
# Identical rows on both backends, planted right after the migration named.
plant() {
  local sql=$1
  pg -d "$scratch" -c "$sql" >/dev/null 2>"$tmp/err" || fail "planting rows on PostgreSQL: $(head -1 "$tmp/err")"
  # `lines` is a reserved word in MariaDB, not in PostgreSQL.
  my "$scratch" -e "${sql//, lines,/, \`lines\`,}" 2>"$tmp/err" || fail "planting rows on MariaDB: $(grep -m1 ERROR "$tmp/err" || head -1 "$tmp/err")"
}
# Ids that differ in case, in a trailing space, and beyond ASCII: byte order and no pad.
ids=("a" "a " "B" "é" "z")
times=("2026-11-20 12:34:56.789999" "1969-12-31 23:59:59.999500" "2026-11-20 12:34:56" "2000-01-01 00:00:00.000999" "2026-12-01 08:00:00.5")
rows() { # $1: one VALUES tuple with {id} and {t}
  local out="" i
  for i in "${!ids[@]}"; do
    local v=${1//\{id\}/${ids[$i]}}
    out+="${out:+, }${v//\{t\}/${times[$i]}}"
  done
  printf '%s' "$out"
}

# 2. Up, in order.
for m in "${migrations[@]}"; do
  pg_file "$m" up.sql
  pg_file "$m" down.sql
  pg_file "$m" up.sql
  my "$scratch" <"migrations/mysql/$m/up.sql" 2>"$tmp/err" || fail "mysql/$m/up.sql: $(head -1 "$tmp/err")"
  case "$m" in
    *_ship_create_instance)
      plant "INSERT INTO ship_instance (id, region_id, created_at) VALUES (1, 'eu', '2026-11-01 00:00:00')" ;;
    *_sync_create_changelog)
      plant "INSERT INTO sync_outbox (peer, resource, seq, status, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, updated_at)
             VALUES ('us', 'customers', 5, 'pending', 2, '2026-11-20 00:00:00', NULL, NULL, 'timeout', '2026-11-20 00:00:00', '2026-11-20 00:00:01'),
                    ('us', 'customers', 6, 'dead', 9, '2026-11-20 00:00:00', NULL, NULL, 'refused', '2026-11-20 00:00:00', '2026-11-20 00:00:01'),
                    ('ap', 'customers', 7, 'pending', 0, '2026-11-20 00:00:00', 'w1', '2026-11-20 00:01:00', NULL, '2026-11-20 00:00:00', '2026-11-20 00:00:02')"
      plant "INSERT INTO sync_sequences (resource, last_seq, pruned_through) VALUES ('customers', 3, 0), ('orders', 0, 0)"
      plant "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, origin_region, schema_version, created_at)
             VALUES ('customers', 1, 'a', 'upsert', '{}', 900, 'eu', 1, '2026-11-20 00:00:00'),
                    ('customers', 2, 'b', 'upsert', '{}', 700, 'us', 1, '2026-11-20 00:00:00'),
                    ('customers', 3, 'a', 'delete', '{}', 800, 'eu', 1, '2026-11-20 00:00:00')" ;;
    *_customers_create_customers)
      plant "INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at)
             VALUES $(rows "('{id}', 'acme', 'n', 'n@example.com', 'active', '{t}', '{t}')")" ;;
    *_sync_create_delivery)
      plant "INSERT INTO sync_delivery_ranges (peer, resource, first_seq, last_seq, attempts, created_at, updated_at)
             VALUES ('ap', 'customers', 7, 9, 1, '2026-11-20 00:00:00', '2026-11-20 00:00:00')" ;;
    *_orders_create_orders)
      plant "INSERT INTO orders (id, tenant_id, customer_id, number, status, currency, lines, total_minor, created_at, updated_at)
             VALUES $(rows "('{id}', 'acme', 'c', 'N-1', 'open', 'EUR', '[]', 0, '{t}', '{t}')")" ;;
  esac
done

# 3. The schemas (and the planted rows) agree.
my "$scratch" >"$tmp/mysql.schema" 2>"$tmp/err" <<SQL || fail "describing MariaDB: $(head -1 "$tmp/err")"
SELECT CONCAT_WS(' ', 'table', TABLE_NAME) FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = '$scratch' AND TABLE_TYPE = 'BASE TABLE';
SELECT CONCAT_WS(' ', 'column', TABLE_NAME, COLUMN_NAME,
         CASE DATA_TYPE
           WHEN 'varchar' THEN CONCAT('varchar(', CHARACTER_MAXIMUM_LENGTH, ')')
           WHEN 'char' THEN CONCAT('varchar(', CHARACTER_MAXIMUM_LENGTH, ')')
           WHEN 'text' THEN 'text' WHEN 'mediumtext' THEN 'text'
           WHEN 'bigint' THEN 'bigint' WHEN 'int' THEN 'integer'
           WHEN 'datetime' THEN CONCAT('timestamp(', DATETIME_PRECISION, ')')
           ELSE CONCAT('unmapped:', COLUMN_TYPE) END,
         IF(IS_NULLABLE = 'YES', 'null', 'not-null'),
         IF(EXTRA LIKE '%auto_increment%', 'identity', NULL),
         CONCAT('default=', COALESCE(NULLIF(COLUMN_DEFAULT, 'NULL'), '-')))
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$scratch';
SELECT CONCAT_WS(' ', 'bytes-limit', TABLE_NAME, COLUMN_NAME, CHARACTER_OCTET_LENGTH)
  FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = '$scratch' AND DATA_TYPE IN ('text', 'mediumtext');
SELECT CONCAT_WS(' ', 'index', TABLE_NAME, INDEX_NAME, IF(NON_UNIQUE = 0, 'unique', 'non-unique'),
         GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ','))
  FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '$scratch'
 GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE;
SELECT CONCAT_WS(' ', 'check', TABLE_NAME, CONSTRAINT_NAME)
  FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '$scratch';
SQL
pg -d "$scratch" >"$tmp/postgres.schema" 2>"$tmp/err" <<'SQL' || fail "describing PostgreSQL: $(head -1 "$tmp/err")"
SELECT concat_ws(' ', 'table', table_name) FROM information_schema.tables
 WHERE table_schema = 'public' AND table_type = 'BASE TABLE';
SELECT concat_ws(' ', 'column', table_name, column_name,
         CASE data_type
           WHEN 'character varying' THEN 'varchar(' || character_maximum_length || ')'
           WHEN 'text' THEN 'text' WHEN 'bigint' THEN 'bigint' WHEN 'integer' THEN 'integer'
           WHEN 'timestamp without time zone' THEN 'timestamp(' || datetime_precision || ')'
           ELSE 'unmapped:' || data_type END,
         CASE is_nullable WHEN 'YES' THEN 'null' ELSE 'not-null' END,
         CASE is_identity WHEN 'YES' THEN 'identity' END,
         'default=' || COALESCE(regexp_replace(column_default, '::[a-z ]+$', ''), '-'))
  FROM information_schema.columns WHERE table_schema = 'public';
SELECT concat_ws(' ', 'bytes-limit', t.relname,
         (regexp_match(pg_get_constraintdef(c.oid), 'octet_length\((\w+)\) <= (\d+)'))[1],
         (regexp_match(pg_get_constraintdef(c.oid), 'octet_length\((\w+)\) <= (\d+)'))[2])
  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND c.contype = 'c' AND c.conname LIKE '%\_bytes';
SELECT concat_ws(' ', 'index', t.relname, CASE WHEN x.indisprimary THEN 'PRIMARY' ELSE i.relname END,
         CASE WHEN x.indisunique THEN 'unique' ELSE 'non-unique' END,
         string_agg(a.attname, ',' ORDER BY k.ord))
         || CASE WHEN x.indpred IS NOT NULL THEN ' partial' ELSE '' END
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
 WHERE n.nspname = 'public'
 GROUP BY t.relname, i.relname, x.indisprimary, x.indisunique, x.indpred IS NOT NULL;
SELECT concat_ws(' ', 'check', t.relname, c.conname)
  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND c.contype = 'c' AND c.conname NOT LIKE '%\_bytes';
SQL
for side in mysql postgres; do LC_ALL=C sort -o "$tmp/$side.schema" "$tmp/$side.schema"; done
names() { grep -E '^(table|column) ' "$1" | cut -d' ' -f1-3 | LC_ALL=C sort -u; }
if ! diff <(names "$tmp/mysql.schema") <(names "$tmp/postgres.schema") >"$tmp/names.diff"; then
  fail "tables or columns differ (< MariaDB, > PostgreSQL):
$(grep '^[<>]' "$tmp/names.diff")"
fi
if ! diff "$tmp/mysql.schema" "$tmp/postgres.schema" >"$tmp/schema.diff"; then
  fail "column types, keys, indexes or constraints differ (< MariaDB, > PostgreSQL):
$(grep '^[<>]' "$tmp/schema.diff")"
fi
not_c=$(pg -d "$scratch" -c "SELECT string_agg(table_name || '.' || column_name, ' ')
  FROM information_schema.columns WHERE table_schema = 'public'
   AND data_type IN ('character varying', 'character', 'text') AND collation_name IS DISTINCT FROM 'C'") ||
  fail "reading the collations"
[ -z "$not_c" ] || fail "character columns without COLLATE \"C\": $not_c"

# The planted rows: HLC backfill, origin, the outbox-to-ranges move, the clock mark's backfill
# (ADR 0019), and ORDER BY order.
read -r -d '' readback <<'SQL' || true
SELECT concat_ws(' ', 'customers', id, sync_version, sync_origin, deleted_at IS NULL) FROM customers ORDER BY id;
SELECT concat_ws(' ', 'orders', id, sync_version, sync_origin) FROM orders ORDER BY id;
SELECT concat_ws(' ', 'range', peer, resource, first_seq, last_seq, attempts, COALESCE(last_error, '-'), lease_owner IS NULL)
  FROM sync_delivery_ranges ORDER BY peer, resource, first_seq;
SELECT concat_ws(' ', 'outbox', peer, seq, status) FROM sync_outbox ORDER BY peer, seq;
SELECT concat_ws(' ', 'instance', region_id, incarnation, previous_incarnation) FROM ship_instance;
SELECT concat_ws(' ', 'registry', id, version) FROM broker_registry_lock;
SELECT concat_ws(' ', 'sequence', resource, last_seq, max_hlc) FROM sync_sequences ORDER BY resource;
SELECT concat_ws(' ', 'changelog', resource, seq, entity_id, hlc) FROM sync_changelog ORDER BY resource, seq;
SQL
my "$scratch" -e "$readback" >"$tmp/mysql.rows" 2>"$tmp/err" || fail "reading rows on MariaDB: $(head -1 "$tmp/err")"
pg -d "$scratch" -c "$readback" >"$tmp/postgres.rows" 2>"$tmp/err" || fail "reading rows on PostgreSQL: $(head -1 "$tmp/err")"
sed -i -e 's/ t$/ 1/' -e 's/ f$/ 0/' "$tmp/postgres.rows"
if ! diff "$tmp/mysql.rows" "$tmp/postgres.rows" >"$tmp/rows.diff"; then
  fail "the planted rows read back differently (< MariaDB, > PostgreSQL):
$(grep '^[<>]' "$tmp/rows.diff")"
fi
grep -qx "sequence customers 3 900" "$tmp/postgres.rows" ||
  fail "the clock mark of customers should be its changelog's largest hlc, 900:
$(grep '^sequence' "$tmp/postgres.rows")"
expected_hlc=$((1795178096789 * 65536))
grep -qx "customers a $expected_hlc eu 1" "$tmp/postgres.rows" ||
  fail "customer 'a' (updated 2026-11-20 12:34:56.789999) should have sync_version $expected_hlc, origin eu:
$(grep '^customers' "$tmp/postgres.rows")"

tables=$(grep -c '^table ' "$tmp/postgres.schema")
columns=$(grep -c '^column ' "$tmp/postgres.schema")
indexes=$(grep -c '^index ' "$tmp/postgres.schema")

# 4. Down, in reverse order: nothing left.
for ((i = ${#migrations[@]} - 1; i >= 0; i--)); do
  pg_file "${migrations[$i]}" down.sql
done
left=$(pg -d "$scratch" -c "SELECT string_agg(c.relname || ' (' || c.relkind::text || ')', ', ')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'") ||
  fail "listing what is left"
[ -z "$left" ] || fail "left behind after every down.sql: $left"

echo "$name: OK — ${#migrations[@]} migrations (up, redo, down) on PostgreSQL $pg_version match MariaDB" \
  "$my_version: $tables tables, $columns columns, $indexes indexes, planted rows identical; nothing left after down"
