#!/usr/bin/env bash
# SFTP delivery throughput: one ~200 MB part (uncompressed CSV) exported with `to = "sftp"` to
# the loopback test sshd (scripts/services/sftp.sh), and the same file put with OpenSSH's own
# `sftp` client as a reference.
#
#   scripts/bench-sftp.sh [MB]          default 200
#   PROFILE=release scripts/bench-sftp.sh   (default: the dev profile, dependencies at opt-level 1)
#
# exportd's figure comes from its own log line (`sftp: put KEY (N bytes) in T s, X MB/s`), which
# times the upload alone: connecting, mkdir, pipelined writes, fsync, rename.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-200}
PROFILE=${PROFILE:-dev}
if [ "$PROFILE" = release ]; then
  cargo build --release -q; BIN="$PWD/target/release/exportd"
else
  cargo build -q; BIN="$PWD/target/debug/exportd"
fi

T=$(mktemp -d /tmp/exportd-bench-sftp.XXXXXX)
trap 'scripts/services.sh stop "$T/svc" >/dev/null 2>&1; rm -rf "$T"' EXIT
scripts/services.sh install
scripts/services.sh start "$T/svc" sftp 2>/dev/null
# shellcheck source=/dev/null
source "$T/svc/env"

W="$T/ws"; mkdir -p "$W/exports.d"
cat > "$W/exportd.toml" <<TOML
[connections.bench]
type = "sftp"
host = "127.0.0.1"
port = $EXPORTD_TEST_SFTP_PORT
username = "root"
private_key = { file = "$EXPORTD_TEST_SFTP_CLIENT_KEY" }
known_hosts = "$EXPORTD_TEST_SFTP_KNOWN_HOSTS"
TOML
cat > "$W/exports.d/bench.toml" <<'TOML'
window = "all"
[fields]
include = ["lead_id", "notes"]
[format]
type = "csv"
compression = "none"
[manifest]
enabled = false
[[deliver]]
to = "sftp"
connection = "bench"
path = "bench/{{part}}.csv"
TOML
# Leads of 10 KB of incompressible-looking text each.
python3 - "$MB" > "$W/leads.ndjson" <<'PY'
import base64, json, os, sys
for i in range(int(sys.argv[1]) * 100):
    notes = base64.b64encode(os.urandom(7500)).decode()
    print(json.dumps({"id": f"L{i}", "created_at": "2024-01-15T01:00:00Z", "notes": notes}))
PY
"$BIN" --config "$W/exportd.toml" ingest --leads "$W/leads.ndjson" >/dev/null
RUST_LOG=exportd::deliver::sftp=info "$BIN" --config "$W/exportd.toml" export bench \
  --at 2024-01-16T00:00:00Z 2> "$T/log" >/dev/null
part="$EXPORTD_TEST_SFTP_FILES/bench/001.csv"
[ -f "$part" ] || part=$(find "$EXPORTD_TEST_SFTP_FILES/bench" -type f | head -1)
bytes=$(stat -c %s "$part")
echo "part: $bytes bytes ($PROFILE profile)"
grep -o 'sftp: put .*' "$T/log" | sed 's/^/exportd: /'

# Reference: OpenSSH's sftp client, same server, same file.
start=$EPOCHREALTIME
sftp -q -i "$EXPORTD_TEST_SFTP_CLIENT_KEY" -P "$EXPORTD_TEST_SFTP_PORT" -o IdentitiesOnly=yes \
  -o UserKnownHostsFile="$EXPORTD_TEST_SFTP_KNOWN_HOSTS" -b - root@127.0.0.1 >/dev/null <<CMD
put $part bench/openssh.csv
CMD
end=$EPOCHREALTIME
python3 -c "import sys; b, s = int(sys.argv[1]), float(sys.argv[2]); print(f'openssh sftp: {s:.2f} s, {b / 1e6 / s:.1f} MB/s')" \
  "$bytes" "$(python3 -c "print($end - $start)")"
