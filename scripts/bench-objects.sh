#!/usr/bin/env bash
# Object-store delivery benchmark against the local test servers (moto, fake-gcs-server,
# Azurite), started here on loopback and stopped on exit.
#
#   scripts/bench-objects.sh [SMALL_LEADS] [BIG_LEADS]   default: 240000 (~200 MB), 1200000 (~1 GB)
#
# 1. Throughput: one uncompressed NDJSON part of ~200 MB exported to each store; MB/s is the
#    part's upload alone (exportd's debug line "uploaded `KEY`: N bytes in S s", so the query
#    and encoding before it do not count).
# 2. Memory: peak RSS (/usr/bin/time -v) of `exportd export` delivering a ~1 GB part to S3 as
#    a multipart upload, beside the peak RSS of the same export to `local`.
#
# EXPORTD_BIN picks the binary (default: the debug build, which `cargo build` makes here; a
# release build is faster at encoding, not at uploading). Demo stores are kept under
# target/bench-objects/ and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-240000}
BIG=${2:-1200000}
if [ -z "${EXPORTD_BIN:-}" ]; then
  cargo build -q
  EXPORTD_BIN="$PWD/target/debug/exportd"
fi
ROOT="$PWD/target/bench-objects"
mkdir -p "$ROOT"

scripts/services.sh install
SERVICES="$(mktemp -d /tmp/exportd-bench-objects.XXXXXX)"
trap 'scripts/services.sh stop "$SERVICES"; rm -rf "$SERVICES"' EXIT
scripts/services.sh start "$SERVICES" s3 gcs azure
# shellcheck source=/dev/null
source "$SERVICES/env"
export TEST_S3_KEY_ID="$EXPORTD_TEST_S3_ACCESS_KEY_ID" TEST_S3_SECRET="$EXPORTD_TEST_S3_SECRET_ACCESS_KEY"
export TEST_AZURE_KEY="$EXPORTD_TEST_AZURE_ACCESS_KEY"
export TEST_GCS_KEY='{"private_key":"unused","private_key_id":"unused","client_email":"bench@test.invalid","disable_oauth":true}'

# workspace LEADS: a directory with exportd.toml, a demo store of LEADS leads and one
# definition per destination, each exporting everything as one uncompressed NDJSON part.
workspace() {
  local dir="$ROOT/$1"
  mkdir -p "$dir/exports.d"
  cat > "$dir/exportd.toml" <<TOML
[connections.s3]
type = "s3"
endpoint = "$EXPORTD_TEST_S3_ENDPOINT"
path_style = true
allow_insecure = true
access_key_id = { env = "TEST_S3_KEY_ID" }
secret_access_key = { env = "TEST_S3_SECRET" }
[connections.gcs]
type = "gcs"
endpoint = "$EXPORTD_TEST_GCS_ENDPOINT"
allow_insecure = true
service_account_key = { env = "TEST_GCS_KEY" }
[connections.azure]
type = "azure"
account = "$EXPORTD_TEST_AZURE_ACCOUNT"
endpoint = "$EXPORTD_TEST_AZURE_ENDPOINT"
allow_insecure = true
access_key = { env = "TEST_AZURE_KEY" }
TOML
  local head='window = "all"
[format]
type = "ndjson"
[chunk]
max_bytes = "100GB"
[[deliver]]'
  printf '%s\nto = "local"\npath = "bench/leads_{{part}}.ndjson"\n' "$head" > "$dir/exports.d/to_local.toml"
  printf '%s\nto = "s3"\nconnection = "s3"\nbucket = "%s"\npath = "bench/leads_{{part}}.ndjson"\n' \
    "$head" "$EXPORTD_TEST_S3_BUCKET" > "$dir/exports.d/to_s3.toml"
  printf '%s\nto = "gcs"\nconnection = "gcs"\nbucket = "%s"\npath = "bench/leads_{{part}}.ndjson"\n' \
    "$head" "$EXPORTD_TEST_GCS_BUCKET" > "$dir/exports.d/to_gcs.toml"
  printf '%s\nto = "azure"\nconnection = "azure"\ncontainer = "%s"\npath = "bench/leads_{{part}}.ndjson"\n' \
    "$head" "$EXPORTD_TEST_AZURE_CONTAINER" > "$dir/exports.d/to_azure.toml"
  if [ ! -s "$dir/var/leads.db" ]; then
    "$EXPORTD_BIN" --config "$dir/exportd.toml" demo --leads "$1" --seed 7 --days 3 \
      --end 2024-02-01T00:00:00Z > /dev/null
  fi
  echo "$dir"
}

# run DIR EXPORT: prints "WALL_SECONDS PEAK_RSS_KB UPLOAD_SECONDS UPLOAD_MBPS" of one
# `exportd export` (upload figures of the part, `-` for local).
run() {
  local log="$1/time-$2.log"
  EXPORTD_LOG="info,exportd::deliver=debug" /usr/bin/time -v "$EXPORTD_BIN" \
    --config "$1/exportd.toml" export "$2" --at 2024-02-01T00:00:00Z \
    > "$1/out-$2.log" 2> "$log" || { cat "$1/out-$2.log" "$log" >&2; exit 1; }
  local wall rss upload
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" \
    | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  upload=$(sed -n 's/.*uploaded `bench\/leads_001.ndjson`: [0-9]* bytes in \([0-9.]*\) s (\([0-9.]*\) MB\/s).*/\1 \2/p' "$log")
  echo "$wall $rss ${upload:-- -}"
}

dir=$(workspace "$SMALL")
read -r wall rss _ < <(run "$dir" to_local)
bytes=$(stat -c %s "$dir/var/exports/bench/leads_001.ndjson")
printf 'part of %.0f MB: local export %.1f s, peak RSS %d MB\n' \
  "$(echo "$bytes / 1000000" | bc -l)" "$wall" $((rss / 1024))
for store in s3 gcs azure; do
  read -r wall rss up mbps < <(run "$dir" "to_$store")
  printf '  %-6s upload %s s = %s MB/s; whole export %.1f s, peak RSS %d MB\n' \
    "$store" "$up" "$mbps" "$wall" $((rss / 1024))
done

dir=$(workspace "$BIG")
read -r wall rss _ < <(run "$dir" to_local)
bytes=$(stat -c %s "$dir/var/exports/bench/leads_001.ndjson")
printf 'part of %.0f MB: local export %.1f s, peak RSS %d MB\n' \
  "$(echo "$bytes / 1000000" | bc -l)" "$wall" $((rss / 1024))
read -r wall rss up mbps < <(run "$dir" to_s3)
printf '  s3 multipart upload %s s = %s MB/s; whole export %.1f s, peak RSS %d MB\n' \
  "$up" "$mbps" "$wall" $((rss / 1024))
