#!/usr/bin/env bash
# Export benchmark: exportd against `sqlite3 -csv … | gzip` on the same store, columns and
# window, in one run, so the ratio is meaningful on a noisy machine.
#
#   scripts/bench.sh [LEADS] [LEVELS]     default: 1000000 leads, gzip levels "6 1"
#
# Prints rows/s of both, the ratio exportd/baseline, and exportd's peak RSS (from
# /usr/bin/time). The demo store is built once per size and reused (bench/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
LEADS=${1:-1000000}
LEVELS=${2:-"6 1"}
DIR="$PWD/target/bench/$LEADS"
BIN="$PWD/target/release/exportd"

cargo build --release -q
mkdir -p "$DIR/exports.d"
if [ ! -s "$DIR/var/leads.db" ]; then
  "$BIN" --config "$DIR/exportd.toml" demo --leads "$LEADS" --seed 7 --end 2024-06-01T00:00:00Z --days 30
fi

COLUMNS='"id", "created_at", "source", "outcome", "revenue", "cost", "email", "email.valid", "phone_1", "state", "lead_score"'
SQL="SELECT id,
  strftime('%Y-%m-%dT%H:%M:%SZ', created_at / 1000, 'unixepoch'),
  source, outcome, printf('%.2f', revenue / 10000.0), printf('%.2f', cost / 10000.0),
  json_extract(doc, '\$.\"email\"'), json_extract(doc, '\$.\"email.valid\"'),
  json_extract(doc, '\$.\"phone_1\"'), json_extract(doc, '\$.\"state\"'),
  json_extract(doc, '\$.\"lead_score\"')
FROM leads WHERE created_at >= 0 AND created_at < 1717200000000 ORDER BY created_at, id"

rows=$(sqlite3 "$DIR/var/leads.db" "SELECT count(*) FROM leads")
echo "rows: $rows (leads in the window)"
for level in $LEVELS; do
  cat > "$DIR/exports.d/bench.toml" <<TOML
window = "all"
[fields]
include = [$COLUMNS]
[format]
type = "csv"
compression = "gzip"
level = $level
[[deliver]]
to = "local"
path = "bench/leads_{{part}}.csv.gz"
TOML
  start=$(date +%s.%N)
  sqlite3 -csv -header "$DIR/var/leads.db" "$SQL" | gzip -"$level" > "$DIR/baseline.csv.gz"
  base=$(echo "$(date +%s.%N) - $start" | bc)
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$DIR/rss" "$BIN" --config "$DIR/exportd.toml" export bench --at 2024-06-01T00:00:00Z > /dev/null
  ours=$(echo "$(date +%s.%N) - $start" | bc)
  rss_mib=$(( $(cat "$DIR/rss") / 1024 ))
  printf 'gzip -%s: sqlite3|gzip %.2fs (%.0f rows/s, %s bytes)  exportd %.2fs (%.0f rows/s, %s bytes)  ratio %.2fx  exportd peak RSS %s MiB\n' \
    "$level" "$base" "$(echo "$rows / $base" | bc -l)" "$(stat -c %s "$DIR/baseline.csv.gz")" \
    "$ours" "$(echo "$rows / $ours" | bc -l)" "$(stat -c %s "$DIR/var/exports/bench/leads_001.csv.gz")" \
    "$(echo "$base / $ours" | bc -l)" "$rss_mib"
done
