#!/usr/bin/env bash
# Runs schemathesis (property-based tests generated from the OpenAPI document) against a live
# `bourse serve`: a fresh data directory, the exchange simulator as the feed, an admin token,
# no rate limit. It creates an account and funds it, then runs every check and phase set in
# schemathesis.toml with that account's bearer token and the admin token, and fails when
# schemathesis reports a failure. The server is stopped on every exit.
#
# Needs the schemathesis CLI: `target/venv/bin/schemathesis` (scripts/test.sh installs it) or
# $SCHEMATHESIS. The server is $BOURSE_BIN, else target/debug/bourse (built by cargo test), else
# it is built.
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis="${SCHEMATHESIS:-target/venv/bin/schemathesis}"
bourse="${BOURSE_BIN:-target/debug/bourse}"
if [ ! -x "${bourse}" ]; then
  cargo build --locked -q -p bourse
  bourse=target/debug/bourse
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "${server_pid}" ]; then
    kill "${server_pid}" 2> /dev/null || true
    wait "${server_pid}" 2> /dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT

# The admin token is made up for this run: the server is local and lives as long as the script.
export BOURSE_ADMIN_TOKEN="schemathesis-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
"${bourse}" serve --data-dir "${work}/data" --http-addr 127.0.0.1:0 --feed sim \
  --rate-limit 0 --web-dir "${work}/no-web" 2> "${work}/server.log" &
server_pid=$!

# The server logs "HTTP on http://HOST:PORT" once it is bound (port 0: a free one).
base=""
for _ in $(seq 1 300); do
  base="$(sed -n 's/.*HTTP on \(http:\/\/[0-9.:]*\).*/\1/p' "${work}/server.log" | head -n 1)"
  [ -n "${base}" ] && break
  if ! kill -0 "${server_pid}" 2> /dev/null; then
    cat "${work}/server.log" >&2
    echo "schemathesis.sh: the server stopped before serving" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "${base}" ]; then
  cat "${work}/server.log" >&2
  echo "schemathesis.sh: the server did not report its address in 30 s" >&2
  exit 1
fi
echo "== schemathesis against ${base} (server log: kept on failure)"

json() { curl -sS --fail-with-body -H 'Content-Type: application/json' "$@"; }
account="$(json -X PUT "${base}/api/v1/account" \
  -d '{"name": "Schemathesis", "proof": "passport:st-1", "currencyPreference": "USD"}')"
token="$(printf '%s' "${account}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')"
if [ -z "${token}" ]; then
  echo "schemathesis.sh: no token in ${account}" >&2
  exit 1
fi
deposit() {
  json -X PUT "${base}/api/v1/funds" -H "Authorization: Bearer ${token}" \
    -d "{\"amount\": \"$1\", \"currency\": \"$2\", \"type\": \"bank\", \"requestId\": \"st-$2\", \"additionalInformation\": {\"accountNumber\": \"DE0012345678\"}}" > /dev/null
}
deposit 1000000.00 USD
deposit 1000 AAPL

export BOURSE_TOKEN="${token}"
status=0
"${schemathesis}" run "${base}/api/v1/openapi.json" || status=$?
if [ "${status}" -ne 0 ]; then
  echo "== server log (last 40 lines)" >&2
  tail -n 40 "${work}/server.log" >&2
fi
exit "${status}"
