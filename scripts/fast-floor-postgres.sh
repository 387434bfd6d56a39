#!/usr/bin/env bash
# A Postgres whose data directory is in memory (/dev/shm), for reproducing
# on any machine the regime the ingest issue's one-event targets are judged
# in on a fast-floor machine: with fsync costing next to nothing, the
# single-row floor is bound by CPU alone, as on the outside harness's
# machines, and the bench's bound lines show what is reachable there.
# Nothing in it is durable; it is for `go run ./cmd/bench` only:
#
#   scripts/fast-floor-postgres.sh start
#   go run ./cmd/bench -only ingest -ingest-parts one -db-url "$(scripts/fast-floor-postgres.sh url)"
#   scripts/fast-floor-postgres.sh stop
#
# Needs the Debian postgresql package (its initdb and pg_ctl) and root, as
# on the project's machines; it runs the server as the postgres user with
# Postgres's default settings, on port FAST_FLOOR_PORT (5433).
set -euo pipefail

port=${FAST_FLOOR_PORT:-5433}
dir=/dev/shm/tollgate-fast-floor
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() { su postgres -s /bin/sh -c "$*"; }

case ${1:-} in
start)
	if [ ! -d "$dir/data" ]; then
		mkdir -p "$dir"
		chown postgres "$dir"
		as_postgres "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >"$dir/initdb.log"
	fi
	as_postgres "'$bin/pg_ctl' -D '$dir/data' status" >/dev/null ||
		as_postgres "'$bin/pg_ctl' -D '$dir/data' -o '-p $port -k $dir' -l '$dir/log' -w start" >/dev/null
	psql -h 127.0.0.1 -p "$port" -U postgres -Atqc "select 1 from pg_database where datname = 'test'" postgres | grep -q 1 ||
		psql -h 127.0.0.1 -p "$port" -U postgres -qc "create database test" postgres
	echo "fast-floor Postgres on 127.0.0.1:$port (data in $dir)"
	;;
stop)
	as_postgres "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop" >/dev/null
	rm -rf "$dir"
	;;
url)
	echo "postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
	;;
*)
	echo "usage: $0 start|stop|url" >&2
	exit 2
	;;
esac
