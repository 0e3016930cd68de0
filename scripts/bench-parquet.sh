#!/usr/bin/env bash
# Parquet export benchmark: exportd writing Parquet (zstd, snappy) and CSV (gzip) against the
# `sqlite3 -csv … | gzip -6` baseline on the same store, columns and window, in one run, so
# the ratios are meaningful on a noisy machine.
#
#   scripts/bench-parquet.sh [LEADS] [ROW_GROUP_ROWS]   default: 1000000 leads, 65536 rows
#   EXPORTD_BIN=/path/to/exportd scripts/bench-parquet.sh …  (use that binary, build nothing)
#
# Prints wall time, rows/s, file size, speed ratio against the baseline (>1: faster than the
# baseline) and exportd's peak RSS (/usr/bin/time); pyarrow reads each Parquet file back and
# checks its row count against the store. Peak RSS should not grow with LEADS:
# run it with 10000000 to check (the demo store then takes a while to build, once).
# The demo store is built once per size and reused (target/bench/, shared with bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
LEADS=${1:-1000000}
ROW_GROUP_ROWS=${2:-65536}
# pyarrow from the test venv (scripts/services.sh install) reads every Parquet file back.
PYTHON=${EXPORTD_TEST_PYTHON:-$HOME/.cache/exportd-test/venv/bin/python}

# shellcheck source=scripts/bench-store.sh
source scripts/bench-store.sh
echo "rows: $rows; row_group_rows: $ROW_GROUP_ROWS"

start=$(date +%s.%N)
sqlite3 -csv -header "$DIR/var/leads.db" "$SQL" | gzip -6 > "$DIR/baseline.csv.gz"
base=$(echo "$(date +%s.%N) - $start" | bc)
printf '%-22s %7.2fs %9.0f rows/s %11s bytes\n' "sqlite3 -csv | gzip -6" "$base" \
  "$(echo "$rows / $base" | bc -l)" "$(stat -c %s "$DIR/baseline.csv.gz")"

run() { # NAME TYPE COMPRESSION EXT
  local name=$1 type=$2 compression=$3 ext=$4 extra=""
  [ "$type" = parquet ] && extra="row_group_rows = $ROW_GROUP_ROWS"
  cat > "$DIR/exports.d/bench.toml" <<TOML
window = "all"
[fields]
include = [$COLUMNS]
[format]
type = "$type"
compression = "$compression"
$extra
[[deliver]]
to = "local"
path = "bench-parquet/leads.$ext"
TOML
  rm -rf "$DIR/var/exports/bench-parquet"
  local start ours rss_mib
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$DIR/rss" "$BIN" --config "$DIR/exportd.toml" export bench --at 2024-06-01T00:00:00Z > /dev/null
  ours=$(echo "$(date +%s.%N) - $start" | bc)
  rss_mib=$(( $(cat "$DIR/rss") / 1024 ))
  printf '%-22s %7.2fs %9.0f rows/s %11s bytes  ratio %.2fx  peak RSS %s MiB\n' "exportd $name" \
    "$ours" "$(echo "$rows / $ours" | bc -l)" "$(stat -c %s "$DIR/var/exports/bench-parquet/leads.$ext")" \
    "$(echo "$base / $ours" | bc -l)" "$rss_mib"
  if [ "$type" = parquet ] && [ -x "$PYTHON" ]; then
    # Read back with pyarrow: the row count must equal the store's, and print the column types.
    "$PYTHON" - "$DIR/var/exports/bench-parquet/leads.$ext" "$rows" <<'PY'
import sys, pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
n = f.metadata.num_rows
assert n == int(sys.argv[2]), f"pyarrow reads {n} rows, the store has {sys.argv[2]}"
print(f"  pyarrow: {n} rows in {f.metadata.num_row_groups} row groups;",
      ", ".join(f"{c.name}: {c.type}" for c in f.schema_arrow))
PY
  fi
}
run "parquet zstd" parquet zstd parquet
run "parquet snappy" parquet snappy parquet
run "parquet none" parquet none parquet
run "csv gzip-6" csv gzip csv.gz
run "csv none" csv none csv
rm -f "$DIR/exports.d/bench.toml"
