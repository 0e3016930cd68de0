# Debian's Chromium for the status page's browser test (tests/it/page.rs). Nothing to start:
# each test runs `chromium --headless` itself; this only installs it and says where it is.
APT_PACKAGES+=(chromium)
start_chromium() {
  publish EXPORTD_TEST_CHROMIUM /usr/bin/chromium
}
