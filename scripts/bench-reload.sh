#!/usr/bin/env bash
# Daemon benchmark: how long N export definitions take to validate, to load at start-up and to
# reload after one file changes, and what the idle daemon costs in CPU and memory.
#
#   scripts/bench-reload.sh [N...]     default: 1000 10000
#
# For each N it prints one line per figure:
#   validate        wall time of `exportd validate` on the N definitions
#   startup         `exportd run` start to the log line "exportd is ready" (first reconcile done)
#   reload          one file modified to the next "Definitions reconciled" log line; this includes
#                   the watcher's debounce (0.5 s polls, two equal readings), so ~0.5–1 s of it is
#                   by design, the rest is re-validation and reconcile
#   idle            CPU time (utime+stime from /proc/PID/stat) used over IDLE_SECS of idle, as a
#                   share of one core, plus VmRSS and VmHWM from /proc/PID/status
#
# Every schedule is hours to months away (computed from the current time), so no run starts
# during the measurements and "idle" really is idle. Env: IDLE_SECS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000)
IDLE_SECS=${IDLE_SECS:-30}
BIN="$PWD/target/release/exportd"

cargo build --release -q

WORK=$(mktemp -d "${TMPDIR:-/tmp}/exportd-bench-reload.XXXXXX")
DAEMON_PID=
cleanup() {
  # Only the daemon this script started, by its PID.
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }

# Waits until the log has more than $2 lines matching $1; fails after $3 seconds.
wait_for_log() {
  local pattern=$1 seen=$2 timeout=$3 deadline
  deadline=$(( $(now_ns) + timeout * 1000000000 ))
  while [ "$(grep -c -- "$pattern" "$LOG" || true)" -le "$seen" ]; do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "the daemon exited; log:" >&2; tail -20 "$LOG" >&2; exit 1
    fi
    if [ "$(now_ns)" -gt "$deadline" ]; then
      echo "timed out waiting for \"$pattern\"; log:" >&2; tail -20 "$LOG" >&2; exit 1
    fi
    sleep 0.005
  done
}

# Schedules chosen relative to now so that none fires within the next hours: daily 12 h ahead,
# weekly 3 days ahead, monthly on a day-of-month 10 days ahead, cron in a month two months ahead.
H=$(( (10#$(date -u +%H) + 12) % 24 ))
WEEKDAYS=(monday tuesday wednesday thursday friday saturday sunday)
WEEKDAY=${WEEKDAYS[$(( ($(date -u +%u) - 1 + 3) % 7 ))]}
MDAY=$(( (10#$(date -u +%d) + 9) % 28 + 1 ))
CRON_MONTH=$(( (10#$(date -u +%m) + 1) % 12 + 1 ))
WINDOWS=(previous_hour previous_day previous_week previous_month last_7_days since_last_run all)
FORMATS=(csv tsv json ndjson xml)
COMPRESSIONS=(none gzip zstd none gzip)
TIMEZONES=(UTC America/Chicago Europe/London Asia/Tokyo)

generate() {
  local n=$1 dir=$2 i m schedule
  mkdir -p "$dir/exports.d"
  printf '[http]\nlisten = "127.0.0.1:0"\n' > "$dir/exportd.toml"
  for (( i = 0; i < n; i++ )); do
    m=$(( i % 60 ))
    case $(( i % 6 )) in
      0) schedule=$(printf 'daily at %02d:%02d' "$H" "$m") ;;
      1) schedule=$(printf 'weekly on %s at %02d:%02d' "$WEEKDAY" "$H" "$m") ;;
      2) schedule=$(printf 'monthly on day %d at %02d:%02d' "$MDAY" "$H" "$m") ;;
      3) schedule="$m $H 1 $CRON_MONTH *" ;;
      4) schedule="$m $H 15 $CRON_MONTH *" ;;
      5) schedule=$(printf 'daily at %02d:%02d' "$H" $(( (m + 30) % 60 ))) ;;
    esac
    cat > "$dir/exports.d/export-$i.toml" <<TOML
description = "Benchmark export $i"
kind = "leads"
schedule = "$schedule"
timezone = "${TIMEZONES[$(( i % ${#TIMEZONES[@]} ))]}"
window = "${WINDOWS[$(( i % ${#WINDOWS[@]} ))]}"

[format]
type = "${FORMATS[$(( i % ${#FORMATS[@]} ))]}"
compression = "${COMPRESSIONS[$(( i % ${#COMPRESSIONS[@]} ))]}"

[[deliver]]
to = "local"
path = "bench/$i/{{date}}/{{run_id}}_{{part}}"
retention = "$(( i % 30 + 1 ))d"
TOML
  done
}

# utime + stime of a process, in clock ticks (fields 14 and 15; the name in field 2 has no
# spaces here, so plain splitting is safe).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

for n in "${SIZES[@]}"; do
  dir="$WORK/$n"
  generate "$n" "$dir"
  # Write the fresh files back first: otherwise their writeback competes with the state store's
  # fsyncs during start-up and inflates it several times (seen: 17 s instead of 5 s at 10,000).
  sync
  cd "$dir"

  start=$(now_ns)
  if ! "$BIN" validate > "$dir/validate.out" 2>&1; then
    echo "validate failed on the generated definitions:" >&2; tail -20 "$dir/validate.out" >&2; exit 1
  fi
  echo "n=$n validate: $(secs $(( $(now_ns) - start ))) s"

  LOG="$dir/daemon.log"
  start=$(now_ns)
  EXPORTD_LOG=info NO_COLOR=1 "$BIN" run > /dev/null 2> "$LOG" &
  DAEMON_PID=$!
  wait_for_log "exportd is ready" 0 120
  echo "n=$n startup (start to ready, incl. first reconcile): $(secs $(( $(now_ns) - start ))) s"

  # Reload: rewrite one file with a different schedule, as an operator's edit would.
  for round in 1 2 3; do
    seen=$(grep -c "Definitions reconciled" "$LOG" || true)
    sleep 1.2 # let the watcher settle on the current fingerprint
    start=$(now_ns)
    sed -i "s/^description = .*/description = \"Benchmark export 0, edit $round\"/" exports.d/export-0.toml
    wait_for_log "Definitions reconciled" "$seen" 120
    echo "n=$n reload $round (file change to reconciled): $(secs $(( $(now_ns) - start ))) s"
  done

  # Idle: let the reload settle, then measure.
  sleep 2
  ticks0=$(cpu_ticks "$DAEMON_PID")
  t0=$(now_ns)
  sleep "$IDLE_SECS"
  ticks1=$(cpu_ticks "$DAEMON_PID")
  t1=$(now_ns)
  hz=$(getconf CLK_TCK)
  awk -v d=$(( ticks1 - ticks0 )) -v hz="$hz" -v ns=$(( t1 - t0 )) -v n="$n" \
    -v rss="$(status_kib "$DAEMON_PID" VmRSS)" -v hwm="$(status_kib "$DAEMON_PID" VmHWM)" \
    'BEGIN { printf "n=%s idle over %.0f s: CPU %.2f s (%.2f%% of one core), VmRSS %.1f MiB, VmHWM %.1f MiB\n",
             n, ns / 1e9, d / hz, 100 * d / hz / (ns / 1e9), rss / 1024, hwm / 1024 }'

  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || true
  DAEMON_PID=
  cd "$WORK"
  rm -rf "$dir"
done
