# A webhook receiver (stdlib Python): records every POST; see tests/services/hook.py.
start_webhook() {
  local port; port=$(free_port)
  python3 "$ROOT/tests/services/hook.py" "$port" "$SERVICE_DIR" > "$SERVICE_DIR/log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  publish EXPORTD_TEST_WEBHOOK_URL "http://127.0.0.1:$port"
}
