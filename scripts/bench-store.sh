# Shared by scripts/bench.sh and scripts/bench-parquet.sh (sourced, not run): the demo store of
# LEADS leads (built once per size under target/bench/, seed 7) and the columns both compare,
# as exportd's field list and as the `sqlite3` baseline query, so the two scripts measure
# against the same baseline. Needs LEADS; sets BIN, DIR, COLUMNS, SQL and rows.
# BIN is $EXPORTD_BIN when set (a release binary built elsewhere; nothing is built then),
# otherwise this checkout's release build, built first.
BIN=${EXPORTD_BIN:-$PWD/target/release/exportd}
[ -n "${EXPORTD_BIN:-}" ] || cargo build --release -q
DIR="$PWD/target/bench/$LEADS"
mkdir -p "$DIR/exports.d"
if [ ! -s "$DIR/var/leads.db" ]; then
  "$BIN" --config "$DIR/exportd.toml" demo --leads "$LEADS" --seed 7 --end 2024-06-01T00:00:00Z --days 30
fi

COLUMNS='"id", "created_at", "source", "outcome", "revenue", "cost", "email", "email.valid", "phone_1", "state", "lead_score"'
SQL="SELECT id,
  strftime('%Y-%m-%dT%H:%M:%SZ', created_at / 1000, 'unixepoch'),
  source, outcome, printf('%.2f', revenue / 10000.0), printf('%.2f', cost / 10000.0),
  json_extract(doc, '\$.\"email\"'), json_extract(doc, '\$.\"email.valid\"'),
  json_extract(doc, '\$.\"phone_1\"'), json_extract(doc, '\$.\"state\"'),
  json_extract(doc, '\$.\"lead_score\"')
FROM leads WHERE created_at >= 0 AND created_at < 1717200000000 ORDER BY created_at, id"

rows=$(sqlite3 "$DIR/var/leads.db" "SELECT count(*) FROM leads")
