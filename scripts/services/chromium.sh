# Debian's Chromium for the status page's browser test (tests/it/page.rs). Nothing to start:
# each test runs `chromium --headless` itself; this installs it and says where it is, after
# checking that it runs (a half-installed browser would fail the test for the wrong reason).
APT_PACKAGES+=(chromium)
start_chromium() {
  local bin=/usr/bin/chromium
  if ! "$bin" --version > "$SERVICE_DIR/version" 2>&1; then
    log "$bin does not run: run scripts/services.sh install"
    return 1
  fi
  publish EXPORTD_TEST_CHROMIUM "$bin"
}
