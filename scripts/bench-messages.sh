#!/usr/bin/env bash
# Message destinations benchmark, against the test servers on loopback (scripts/services.sh):
#
#   scripts/bench-messages.sh [RECORDS] [EMAIL_LEADS]     default: 200000 60000
#
#   webhook   RECORDS leads as ndjson, POSTed in batches of 1000 (signed) to the stdlib Python
#             receiver tests/services/hook.py, which writes every request to disk: records/s and
#             MB/s of request bodies. The receiver is single-process Python, so this is a floor
#             for exportd, not a ceiling.
#   email     EMAIL_LEADS leads as one CSV attachment (~10 MB at the default) through aiosmtpd
#             with STARTTLS and AUTH into a Maildir, plain and as an AES-256 zip.
#
# Every figure is the wall time of `exportd export` to the destination minus the same export to
# a local directory (extract, encode and staging are the same in both), so it is the delivery
# alone; both totals are printed too. Each export runs RUNS times (default 3); the median is
# reported. Env: RUNS, PROFILE.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-200000}
EMAIL_LEADS=${2:-60000}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}   # PROFILE=debug measures the test build instead (slower)
BIN="$PWD/target/$PROFILE/exportd"

if [ "$PROFILE" = release ]; then cargo build --release -q; else cargo build -q; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/exportd-bench-messages.XXXXXX")
cleanup() {
  scripts/services.sh stop "$WORK/services" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
scripts/services.sh start "$WORK/services" smtp webhook
# shellcheck source=/dev/null
source "$WORK/services/env"

cat > "$WORK/exportd.toml" <<EOF
[connections.relay]
type = "smtp"
host = "$EXPORTD_TEST_SMTP_HOST"
port = $EXPORTD_TEST_SMTP_PORT
ca_file = "$EXPORTD_TEST_SMTP_CA"
username = "$EXPORTD_TEST_SMTP_USER"
password = { env = "BENCH_SMTP_PASSWORD" }
from = "bench@example.test"

[connections.hook]
type = "webhook"
url = "$EXPORTD_TEST_WEBHOOK_URL/bench"
allow_insecure = true
signing_secret = { env = "BENCH_SIGNING_SECRET" }
EOF
export BENCH_SMTP_PASSWORD="$EXPORTD_TEST_SMTP_PASSWORD" BENCH_SIGNING_SECRET=bench-secret
export BENCH_ZIP_PASSWORD=bench-zip-password
mkdir -p "$WORK/exports.d"

# Leads of one day with the usual lead fields (~250 bytes as JSON): RECORDS on 2024-01-15 for
# the webhook, EMAIL_LEADS on 2024-01-14 for the email.
make_leads() {  # COUNT DAY PREFIX
  python3 - "$@" <<'EOF'
import json, random, sys
count, day, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
random.seed(7)
for i in range(count):
    s = i * 86399 // max(count, 1)
    print(json.dumps({
        "id": f"{prefix}{i:08d}", "created_at": f"{day}T{s // 3600:02}:{s // 60 % 60:02}:{s % 60:02}Z",
        "first_name": random.choice(["Ann", "Bob", "Chen", "Dora"]), "last_name": "Example",
        "email": f"lead{i}@example.com", "phone_1": f"555-{i % 1000:03}-{i % 10000:04}",
        "state": random.choice(["CA", "TX", "NY", "FL", "WA", "IL"]),
        "source": random.choice(["search", "social", "partner"]), "outcome": "success",
        "revenue": round(random.uniform(1, 90), 2), "cost": 2.5,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    }))
EOF
}
{ make_leads "$RECORDS" 2024-01-15 W; make_leads "$EMAIL_LEADS" 2024-01-14 E; } > "$WORK/leads.ndjson"
"$BIN" --config "$WORK/exportd.toml" ingest --leads "$WORK/leads.ndjson" >/dev/null

define() { cat > "$WORK/exports.d/$1.toml"; }
median_run() {  # NAME AT → median wall seconds of RUNS exports
  local name=$1 at=$2 times=()
  for _ in $(seq 1 "$RUNS"); do
    local t0 t1
    t0=$(date +%s%N)
    "$BIN" --config "$WORK/exportd.toml" export "$name" --at "$at" >/dev/null 2>"$WORK/$name.log" \
      || { cat "$WORK/$name.log" >&2; exit 1; }
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] / 1000 }'
}

# --- webhook --------------------------------------------------------------------------------
for target in local webhook; do
  define "hook-$target" <<EOF
window = "previous_day"
[format]
type = "ndjson"
[[deliver]]
$(if [ "$target" = local ]; then echo 'to = "local"
path = "hook/leads.ndjson"'; else echo 'to = "webhook"
connection = "hook"
batch_size = 1000'; fi)
EOF
done
local_s=$(median_run hook-local 2024-01-16T02:00:00Z)
curl -sSf -X POST "$EXPORTD_TEST_WEBHOOK_URL/_reset" >/dev/null
hook_s=$(median_run hook-webhook 2024-01-16T02:00:00Z)
read -r requests body_bytes < <(curl -sSf "$EXPORTD_TEST_WEBHOOK_URL/_received?prefix=/bench" | python3 -c '
import base64, json, sys
rows = [json.loads(l) for l in sys.stdin]
print(len(rows), sum(len(base64.b64decode(r["body_b64"])) for r in rows))')
awk -v n="$RECORDS" -v runs="$RUNS" -v req="$requests" -v bytes="$body_bytes" -v l="$local_s" -v h="$hook_s" 'BEGIN {
  d = h - l; per_run = bytes / runs
  printf "webhook   %d records in %d requests of 1000, %.1f MB of bodies per run\n", n, req / runs, per_run / 1e6
  printf "          export to local %.2f s, to webhook %.2f s -> delivery %.2f s: %.0f records/s, %.1f MB/s\n",
         l, h, d, n / d, per_run / 1e6 / d
}'

# --- email ----------------------------------------------------------------------------------
for target in local email email-zip; do
  {
    echo 'window = "previous_day"'
    echo '[format]'
    echo 'type = "csv"'
    echo '[[deliver]]'
    case $target in
      local) echo 'to = "local"'; echo 'path = "mail/leads.csv"' ;;
      email) printf '%s\n' 'to = "email"' 'connection = "relay"' 'recipients = ["bench@example.test"]' \
               'max_size = "30MB"' ;;
      email-zip) printf '%s\n' 'to = "email"' 'connection = "relay"' 'recipients = ["bench@example.test"]' \
               'max_size = "30MB"' 'zip_password = { env = "BENCH_ZIP_PASSWORD" }' ;;
    esac
  } > "$WORK/exports.d/mail-$target.toml"
done
local_s=$(median_run mail-local 2024-01-15T02:00:00Z)
size=$(stat -c %s "$WORK/var/exports/mail/leads.csv")
newest_mail_size() { stat -c %s "$(ls -td "$EXPORTD_TEST_SMTP_MAILDIR"/new/* | head -1)"; }
mail_s=$(median_run mail-email 2024-01-15T02:00:00Z)
mail_bytes=$(newest_mail_size)
zip_s=$(median_run mail-email-zip 2024-01-15T02:00:00Z)
zip_bytes=$(newest_mail_size)
awk -v size="$size" -v l="$local_s" -v m="$mail_s" -v z="$zip_s" -v mb="$mail_bytes" -v zb="$zip_bytes" 'BEGIN {
  printf "email     one %.1f MB CSV attachment (%.1f MB message): export to local %.2f s, email %.2f s -> send %.2f s\n",
         size / 1e6, mb / 1e6, l, m, m - l
  printf "          as an AES-256 zip (%.1f MB message): email %.2f s -> zip and send %.2f s\n", zb / 1e6, z, z - l
}'
