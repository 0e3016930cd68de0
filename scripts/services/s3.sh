# S3: moto's server (in memory). The bucket `exportd-test` exists from the start; a second
# bucket `exportd-locked` has Object Lock enabled for the `immutable = true` test.
PIP_PACKAGES+=("moto[s3]==5.2.5" flask flask-cors boto3)
start_s3() {
  local port; port=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$SERVICE_DIR/log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  # moto does not check signatures by default, so plain requests create the buckets.
  curl -sSf -X PUT "http://127.0.0.1:$port/exportd-test" > /dev/null
  curl -sSf -X PUT -H 'x-amz-bucket-object-lock-enabled: true' \
    "http://127.0.0.1:$port/exportd-locked" > /dev/null
  publish EXPORTD_TEST_S3_ENDPOINT "http://127.0.0.1:$port"
  publish EXPORTD_TEST_S3_BUCKET exportd-test
  publish EXPORTD_TEST_S3_LOCKED_BUCKET exportd-locked
  publish EXPORTD_TEST_S3_ACCESS_KEY_ID test
  publish EXPORTD_TEST_S3_SECRET_ACCESS_KEY test
  # boto3 reads objects back in the tests (tests/services/s3_probe.py), a client independent
  # of the one under test.
  publish EXPORTD_TEST_S3_PYTHON "$VENV/bin/python"
}
