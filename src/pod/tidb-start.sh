#!/bin/bash
# Entry script of every TiDB pod. Ends with `exec` so tidb-server is PID 1 and
# receives the pod's signals (graceful drain on SIGTERM/SIGQUIT).
#
# Env: ADVERTISE_HOST, PD_ADDR (host:port[,host:port]), CONFIG, optional
# ROOT_PASSWORD_FILE (a mounted Secret key), TIDB_SERVER (default
# /tidb-server), INIT_SQL (default /tmp/tidb-gitops-init.sql).
# Tools: bash, rm (coreutils).
set -euo pipefail

die() {
  echo "tidb-start: $*" >&2
  exit 1
}

for v in ADVERTISE_HOST PD_ADDR CONFIG; do
  [[ -n "${!v:-}" ]] || die "environment variable $v is not set"
done
TIDB_SERVER="${TIDB_SERVER:-/tidb-server}"
INIT_SQL="${INIT_SQL:-/tmp/tidb-gitops-init.sql}"

# --store=tikv: without it TiDB quietly runs on its embedded test store.
args=(
  --store=tikv
  "--path=$PD_ADDR"
  "--advertise-address=$ADVERTISE_HOST"
  --host=0.0.0.0
  -P 4000
  --status=10080
  "--config=$CONFIG"
)

if [[ -n "${ROOT_PASSWORD_FILE:-}" ]]; then
  [[ -s "$ROOT_PASSWORD_FILE" ]] || die "root password file $ROOT_PASSWORD_FILE is missing or empty; check the Secret referenced by the cluster's root password"
  password=""
  IFS= read -r -d '' password <"$ROOT_PASSWORD_FILE" || true
  # Secrets written with `echo` end in a newline (or CRLF); it is not part of
  # the password.
  password="${password%$'\n'}"
  password="${password%$'\r'}"
  [[ -n "$password" ]] || die "root password file $ROOT_PASSWORD_FILE holds no password"
  # MySQL string literal: double backslashes, double single quotes.
  bs="\\"
  q="'"
  password="${password//"$bs"/"$bs$bs"}"
  password="${password//"$q"/"$q$q"}"
  # TiDB runs this file once, when it bootstraps a new cluster (unverified);
  # later changes of the Secret do not change the password. The file holds the
  # password, so only its owner may read it.
  rm -f -- "$INIT_SQL"
  (
    umask 077
    printf "ALTER USER 'root'@'%%' IDENTIFIED BY '%s';\n" "$password" >"$INIT_SQL"
  )
  # unverified: flag form of initialize-sql-file not checked in FACTS (the
  # option exists from TiDB v6.6.0).
  args+=("--initialize-sql-file=$INIT_SQL")
fi

exec "$TIDB_SERVER" "${args[@]}"
