#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs every check: format, lints, tests.
#
# The tests use the standard command-line tools to prove exported files open anywhere:
# gzip, zstd, unzip, tar and 7z (Debian's p7zip-full), and real servers for the remote
# destinations and PostgreSQL (scripts/services.sh): they are installed here if missing,
# started on loopback on free ports, and stopped by PID when the script exits, also when a
# test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in gzip:gzip zstd:zstd unzip:unzip tar:tar 7z:p7zip-full sqlite3:sqlite3 systemd-analyze:systemd; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

scripts/services.sh install

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build --tests

services_dir="$(mktemp -d /tmp/exportd-services.XXXXXX)"
trap 'scripts/services.sh stop "$services_dir"; rm -rf "$services_dir"' EXIT
scripts/services.sh start "$services_dir"
# shellcheck source=/dev/null
source "$services_dir/env"
cargo test
