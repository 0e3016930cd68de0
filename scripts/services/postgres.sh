# A throwaway PostgreSQL 15 cluster (lead store, state store, replicas): fsync off, password
# authentication over TCP on 127.0.0.1, the socket in the service directory. Tests create
# their own database each (CREATE DATABASE with a unique name), so they never see each
# other's rows; EXPORTD_TEST_PG_URL points at the maintenance database `postgres`.
APT_PACKAGES+=(postgresql)

start_postgres() {
  local port bin dir="$SERVICE_DIR" as_pg="setpriv --reuid=postgres --regid=postgres --init-groups"
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  port=$(free_port)
  chown postgres:postgres "$dir"
  echo testpw > "$dir/pw"; chown postgres "$dir/pw"
  (cd "$dir" && $as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
     --auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pw" --no-sync) > "$dir/initdb.log" 2>&1
  # exec + setpriv: the PID registered is the postmaster itself.
  (cd "$dir" && exec $as_pg "$bin/postgres" -D "$dir/data" -p "$port" \
     -c listen_addresses=127.0.0.1 -k "$dir" -c max_connections=200 \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off) > "$dir/server.log" 2>&1 &
  register_pid $!
  wait_tcp "$port"
  for _ in $(seq 1 100); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
  publish EXPORTD_TEST_PG_URL "postgres://postgres:testpw@127.0.0.1:$port/postgres"
  publish EXPORTD_TEST_PG_PORT "$port"
  publish EXPORTD_TEST_PG_BIN "$bin"
}
