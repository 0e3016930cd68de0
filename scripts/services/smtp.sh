# An SMTP relay (aiosmtpd) that stores every message in a Maildir, with STARTTLS required
# (a server certificate signed by a CA made here at start) and AUTH required.
PIP_PACKAGES+=("aiosmtpd==1.4.6")
APT_PACKAGES+=(openssl)

start_smtp() {
  local port dir="$SERVICE_DIR"
  port=$(free_port)
  # A CA and a server certificate it signs (rustls refuses a self-signed CA certificate as
  # the server's own), valid for 127.0.0.1 and localhost.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=exportd-test-ca \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$dir/key.pem" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/cert.pem" 2>/dev/null
  # Python creates the Maildir with its tmp/new/cur folders only when it does not exist yet.
  rm -rf "$dir/maildir"
  "$VENV/bin/python" "$ROOT/tests/services/smtp.py" "$port" "$dir/maildir" \
    --tls "$dir/cert.pem" "$dir/key.pem" --auth "exportd:smtp-test-pw" > "$dir/log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  publish EXPORTD_TEST_SMTP_HOST 127.0.0.1
  publish EXPORTD_TEST_SMTP_PORT "$port"
  publish EXPORTD_TEST_SMTP_MAILDIR "$dir/maildir"
  publish EXPORTD_TEST_SMTP_CA "$dir/ca.pem"
  publish EXPORTD_TEST_SMTP_USER exportd
  publish EXPORTD_TEST_SMTP_PASSWORD smtp-test-pw
}
