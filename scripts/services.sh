#!/usr/bin/env bash
# The real servers the integration tests talk to, on loopback only.
#
#   scripts/services.sh install              install what is missing (idempotent)
#   scripts/services.sh start DIR [NAME…]    start every service (or the named ones) under DIR;
#                                            writes DIR/env (export lines the tests read) and
#                                            DIR/pids; waits until each one answers
#   scripts/services.sh stop DIR             stop what `start` started, by PID
#
# Each service is one file, scripts/services/NAME.sh, which declares its packages
# (APT_PACKAGES, PIP_PACKAGES, NPM_PACKAGES) and a function `start_NAME` that starts the
# server in "$SERVICE_DIR", calls `register_pid PID` and `publish VAR VALUE`.
# Python and npm packages go to a cache outside the repository, so a second run installs
# nothing: $EXPORTD_TEST_CACHE (default ~/.cache/exportd-test).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${EXPORTD_TEST_CACHE:-$HOME/.cache/exportd-test}"
VENV="$CACHE/venv"
NPM_PREFIX="$CACHE/npm"
APT_PACKAGES=() PIP_PACKAGES=() NPM_PACKAGES=()
SERVICES=()
for file in "$ROOT"/scripts/services/*.sh; do
  SERVICES+=("$(basename "$file" .sh)")
  # shellcheck source=/dev/null
  source "$file"
done

log() { echo "services: $*" >&2; }

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something accepts connections on 127.0.0.1:PORT (30 s).
wait_tcp() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing answers on port $1 after 30 s"
  return 1
}

install() {
  local sudo="" missing=() pids=()
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  mkdir -p "$CACHE"
  if [ ${#missing[@]} -gt 0 ]; then
    (
      log "apt: ${missing[*]}"
      $sudo apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    ) & pids+=($!)
  fi
  local pip_want; pip_want="$(printf '%s\n' "${PIP_PACKAGES[@]}" | sort -u)"
  if [ ${#PIP_PACKAGES[@]} -gt 0 ] && [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$pip_want" ]; then
    (
      log "pip: ${PIP_PACKAGES[*]}"
      [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
      echo "$pip_want" > "$VENV/.installed"
    ) & pids+=($!)
  fi
  local npm_want; npm_want="$(printf '%s\n' "${NPM_PACKAGES[@]}" | sort -u)"
  if [ ${#NPM_PACKAGES[@]} -gt 0 ] && [ "$(cat "$NPM_PREFIX/.installed" 2>/dev/null)" != "$npm_want" ]; then
    (
      log "npm: ${NPM_PACKAGES[*]}"
      mkdir -p "$NPM_PREFIX"
      npm install --no-save --no-audit --no-fund --silent --cache "$CACHE/npm-cache" \
        --prefix "$NPM_PREFIX" "${NPM_PACKAGES[@]}"
      echo "$npm_want" > "$NPM_PREFIX/.installed"
    ) & pids+=($!)
  fi
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || { log "installing test services failed"; exit 1; }
}

register_pid() { echo "$1 $CURRENT_SERVICE" >> "$DIR/pids"; }
publish() { printf 'export %s=%q\n' "$1" "$2" >> "$DIR/env"; }

start() {
  DIR="$1"; shift
  mkdir -p "$DIR"; chmod 755 "$DIR"
  # A second `start` in the same DIR adds services: earlier ones keep their env lines and PIDs,
  # so one `stop DIR` still stops everything.
  touch "$DIR/env" "$DIR/pids"
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=("${SERVICES[@]}")
  for name in "${names[@]}"; do
    local running
    running=$(awk -v n="$name" '$2 == n { print $1 }' "$DIR/pids" | tail -n 1)
    if [ -n "$running" ] && kill -0 "$running" 2>/dev/null; then
      log "$name already running"
      continue
    fi
    CURRENT_SERVICE="$name"
    SERVICE_DIR="$DIR/$name"; mkdir -p "$SERVICE_DIR"; chmod 755 "$SERVICE_DIR"
    local t0=$SECONDS
    "start_$name" || { log "$name did not start; its logs are in $SERVICE_DIR"; stop "$DIR"; exit 1; }
    log "$name ready ($((SECONDS - t0)) s)"
  done
  grep -q '^export EXPORTD_TEST_SERVICES=' "$DIR/env" || publish EXPORTD_TEST_SERVICES "$DIR"
}

stop() {
  DIR="$1"
  [ -f "$DIR/pids" ] || return 0
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      log "stopped $name ($pid)"
    fi
  done < <(tac "$DIR/pids")
  : > "$DIR/pids"
}

case "${1:-}" in
  install) install ;;
  start) [ $# -ge 2 ] || { echo "usage: $0 start DIR [NAME…]" >&2; exit 2; }; shift; start "$@" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
