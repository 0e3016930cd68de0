#!/usr/bin/env bash
# PostgreSQL export benchmark: exportd against `psql -c "\copy (…) to stdout csv header" |
# gzip -6` on the same database, columns and window, in one run, so the ratio is meaningful on
# a noisy machine.
#
#   scripts/bench-postgres.sh [LEADS]        default: 1000000 leads
#
# Needs a PostgreSQL server: EXPORTD_TEST_PG_URL (postgres://USER:PASSWORD@HOST:PORT/DB, as
# published by `scripts/services.sh start DIR postgres`). The script creates a database
# `exportd_bench_LEADS` there once per size (demo data, seed 7) and reuses it.
# Prints the demo load time, rows/s of both, the ratio exportd/baseline (goal >= 1.0) and
# exportd's peak RSS from /usr/bin/time -v (goal <= 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
LEADS=${1:-1000000}
: "${EXPORTD_TEST_PG_URL:?start the test services: scripts/services.sh start DIR postgres && source DIR/env}"
DB="exportd_bench_$LEADS"
BASE_URL="${EXPORTD_TEST_PG_URL%/*}"
URL="$BASE_URL/$DB"
DIR="$PWD/target/bench-postgres/$LEADS"
BIN="$PWD/target/release/exportd"

cargo build --release -q
mkdir -p "$DIR/exports.d"
cat > "$DIR/exportd.toml" <<TOML
[store]
url = "$URL"
[state]
url = "sqlite://var/state.db"
TOML

if ! psql "$BASE_URL/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql "$BASE_URL/postgres" -qc "CREATE DATABASE $DB"
fi
if [ "$(psql "$URL" -tAc "SELECT to_regclass('leads') IS NOT NULL AND EXISTS (SELECT 1 FROM leads)")" != "t" ]; then
  start=$(date +%s.%N)
  "$BIN" --config "$DIR/exportd.toml" demo --leads "$LEADS" --seed 7 --end 2024-06-01T00:00:00Z --days 30
  printf 'demo load: %s leads in %.1fs\n' "$LEADS" "$(echo "$(date +%s.%N) - $start" | bc)"
fi

COLUMNS='"id", "created_at", "source", "outcome", "revenue", "cost", "email", "email.valid", "phone_1", "state", "lead_score"'
# The same columns, window and order as the export, formatted the way exportd writes them.
SQL="SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at,
  source, outcome, round(revenue, 2) AS revenue, round(cost, 2) AS cost,
  doc->>'email' AS email, doc->>'email.valid' AS \"email.valid\", doc->>'phone_1' AS phone_1,
  doc->>'state' AS state, doc->>'lead_score' AS lead_score
FROM leads WHERE created_at < '2024-06-01T00:00:00Z' ORDER BY created_at, id"

rows=$(psql "$URL" -tAc "SELECT count(*) FROM leads WHERE created_at < '2024-06-01T00:00:00Z'")
echo "rows: $rows (leads in the window)"
cat > "$DIR/exports.d/bench.toml" <<TOML
window = "all"
[fields]
include = [$COLUMNS]
[format]
type = "csv"
compression = "gzip"
level = 6
[[deliver]]
to = "local"
path = "bench/leads_{{part}}.csv.gz"
TOML

start=$(date +%s.%N)
psql "$URL" -qc "\\copy ($SQL) to stdout csv header" | gzip -6 > "$DIR/baseline.csv.gz"
base=$(echo "$(date +%s.%N) - $start" | bc)

start=$(date +%s.%N)
/usr/bin/time -v -o "$DIR/time.txt" "$BIN" --config "$DIR/exportd.toml" export bench --at 2024-06-01T00:00:00Z > /dev/null
ours=$(echo "$(date +%s.%N) - $start" | bc)
rss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$DIR/time.txt")

printf 'psql \\copy | gzip -6: %.2fs (%.0f rows/s, %s bytes)\n' \
  "$base" "$(echo "$rows / $base" | bc -l)" "$(stat -c %s "$DIR/baseline.csv.gz")"
printf 'exportd:              %.2fs (%.0f rows/s, %s bytes)\n' \
  "$ours" "$(echo "$rows / $ours" | bc -l)" "$(stat -c %s "$DIR/var/exports/bench/leads_001.csv.gz")"
printf 'ratio exportd/psql: %.2fx   exportd peak RSS: %s MiB\n' \
  "$(echo "$base / $ours" | bc -l)" "$((rss_kib / 1024))"
# The two files hold the same rows (the baseline prints booleans and money its own way).
echo "lines: baseline $(gzip -dc "$DIR/baseline.csv.gz" | wc -l), exportd $(gzip -dc "$DIR/var/exports/bench/leads_001.csv.gz" | wc -l)"
