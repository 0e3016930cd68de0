#!/usr/bin/env bash
# Installs what the tests need (idempotently) and runs every check: format, lints, tests.
#
# The tests use the standard command-line tools to prove exported files open anywhere:
# gzip, zstd, unzip, tar and 7z (Debian's p7zip-full). Later issues add real servers
# (PostgreSQL, sshd, an S3 server, SMTP…); they are started here, on loopback, and stopped
# by PID when the script exits.
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

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
