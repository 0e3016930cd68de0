# Not a server: pyarrow (and DuckDB) in the test venv, so integration tests can open exported
# Parquet files with the readers people use. Publishes the venv's python.
PIP_PACKAGES+=("pyarrow==26.0.1" "duckdb==2.0.0")

start_pyarrow() {
  "$VENV/bin/python" -c 'import pyarrow.parquet, duckdb' > "$SERVICE_DIR/log" 2>&1
  publish EXPORTD_TEST_PYTHON "$VENV/bin/python"
}
