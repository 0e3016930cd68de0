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
BIN="$PWD/target/release/exportd"

cargo build --release -q
# shellcheck source=scripts/bench-store.sh
source scripts/bench-store.sh
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
