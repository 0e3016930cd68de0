# Azure Blob: Azurite with its public, well-known development account (devstoreaccount1 and
# the documented dev key; not a secret). The container `exportd-test` exists from the start.
NPM_PACKAGES+=("azurite@3.35.0")
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
start_azure() {
  local port; port=$(free_port)
  "$NPM_PREFIX/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$SERVICE_DIR/data" --disableTelemetry --skipApiVersionCheck --loose --silent \
    > "$SERVICE_DIR/log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  python3 "$ROOT/tests/services/azure_container.py" "http://127.0.0.1:$port/$AZURITE_ACCOUNT" \
    "$AZURITE_ACCOUNT" "$AZURITE_KEY" exportd-test
  publish EXPORTD_TEST_AZURE_ENDPOINT "http://127.0.0.1:$port/$AZURITE_ACCOUNT"
  publish EXPORTD_TEST_AZURE_ACCOUNT "$AZURITE_ACCOUNT"
  publish EXPORTD_TEST_AZURE_ACCESS_KEY "$AZURITE_KEY"
  publish EXPORTD_TEST_AZURE_CONTAINER exportd-test
}
