#!/usr/bin/env bash
# Runs every check and test of the workspace. This is the README's test command and what CI
# runs (.ci/run). It installs what the tests need on a fresh machine: the rustfmt and clippy
# components of the machine's toolchain, tansu (a Kafka-protocol broker the market-data and
# command-log tests start on 127.0.0.1; about 10 to 15 minutes to build on two cores, once), Debian's
# chromium (the web terminal's end-to-end test drives it headless), and the web terminal's
# npm packages, which it then builds (web/dist, served by `bourse serve`), schemathesis
# (a pinned 4.x, in a virtual environment under target/venv) for the API's property tests,
# and cargo-fuzz (scripts/fuzz.sh installs it) for the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."

# The disk this run starts with, so that a run that runs out of it says so at the top. On a
# fresh CI machine nothing is built twice, so incremental build state (gigabytes) is left out
# and debug builds keep line tables only (enough for a panic's backtrace).
df -h . /tmp 2> /dev/null | sed 's/^/disk: /' || true
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "${component}"
  fi
done

# tansu with its memory storage (dynostore) and its SQLite storage (libsql), which the command
# log's tests need to kill and restart a broker without losing what it had written. An older
# install without libsql is replaced.
tansu_has_libsql() {
  python3 - "${CARGO_HOME:-$HOME/.cargo}/.crates2.json" <<'PY' 2> /dev/null
import json, sys
installs = json.load(open(sys.argv[1]))["installs"]
sys.exit(0 if any(k.startswith("tansu 0.6.0 ") and "libsql" in v.get("features", []) for k, v in installs.items()) else 1)
PY
}
if ! command -v tansu > /dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ] || ! tansu_has_libsql; then
  echo "== cargo install tansu (the Kafka-protocol broker of the market-data and command-log tests)"
  cargo install tansu --version 0.6.0 --features dynostore,libsql --locked --force
fi

if [ ! -x /usr/bin/chromium ] || ! command -v ip > /dev/null; then
  echo "== apt-get install chromium (the web terminal's end-to-end test runs it headless) and iproute2 (the cluster test cuts a node off in a network namespace)"
  apt_get() { if [ "$(id -u)" -eq 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq chromium iproute2 > /dev/null
fi

SCHEMATHESIS_VERSION=4.32.5
if ! target/venv/bin/schemathesis --version 2> /dev/null | grep -q "${SCHEMATHESIS_VERSION}"; then
  echo "== pip install schemathesis ${SCHEMATHESIS_VERSION} into target/venv"
  # Python 3.12 or later where there is one: under 3.11, hypothesis intermittently trips over
  # a CPython bug ("AST constructor recursion depth mismatch") while describing a strategy,
  # which schemathesis reports as a runtime error of the run.
  python=python3
  for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    if "${candidate}" --version > /dev/null 2>&1; then python="${candidate}"; break; fi
  done
  rm -rf target/venv
  if ! "${python}" -m venv target/venv > /dev/null 2>&1; then
    apt_get() { if [ "$(id -u)" -eq 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
    apt_get update -qq
    DEBIAN_FRONTEND=noninteractive apt_get install -y -qq python3-venv > /dev/null
    "${python}" -m venv target/venv
  fi
  target/venv/bin/pip install -q "schemathesis==${SCHEMATHESIS_VERSION}"
fi

echo "== npm ci and build of the web terminal (web/)"
npm --prefix web ci --no-audit --no-fund
npm --prefix web run build

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== the partitioned market data at 3,000,000 products (three nodes on tansu; alone, as it takes the machine for about four minutes)"
BOURSE_TIER_PRODUCTS=3000000 cargo test --locked -q -p bourse --test process -- --exact \
  cluster::scale::many_products_over_three_nodes_are_exact_through_each_and_survive_a_node
cargo build --locked -q -p bourse
echo "== web/src/api-schema.ts against bourse openapi (the web terminal's generated API types)"
target/debug/bourse openapi > target/openapi.json
OPENAPI_JSON="${PWD}/target/openapi.json" API_SCHEMA_OUT="${PWD}/target/api-schema.ts" \
  npm --prefix web run --silent gen:api > /dev/null
if ! cmp -s target/api-schema.ts web/src/api-schema.ts; then
  diff -u web/src/api-schema.ts target/api-schema.ts | head -n 60 >&2 || true
  echo "web/src/api-schema.ts is stale: run \`cargo run -q -p bourse -- openapi > target/openapi.json && npm --prefix web run gen:api\` and commit it" >&2
  exit 1
fi
echo "== schemathesis: the OpenAPI document against a live bourse serve (scripts/schemathesis.sh)"
BOURSE_BIN=target/debug/bourse scripts/schemathesis.sh
echo "== fuzzing: every target of fuzz/ for 30 s from its seed corpus (scripts/fuzz.sh; FUZZ_SECONDS runs longer)"
scripts/fuzz.sh
# The fuzz build (about 1.5 GB) is not needed again in a CI run.
[ "${CI:-}" != "true" ] || rm -rf fuzz/target
echo "== benchmark smoke run (checks every venue's final book against the model; figures not kept)"
cargo run --release --locked -q -p bourse-benches --bin throughput -- --ops 200000 --warmup 20000 --reps 1 > /dev/null
echo "== latency smoke run (pipeline open-loop latency; checks each run's state against a journal replay)"
cargo run --release --locked -q -p bourse-benches --bin latency -- --quick > /dev/null
echo "== market-data smoke run (ingest, memory, candle queries; checks every count)"
cargo run --release --locked -q -p bourse-benches --bin market -- --quick > /dev/null
echo "== replicated-log smoke run (three replicas over tansu; checks they end in one state)"
cargo run --release --locked -q -p bourse-benches --bin cluster -- --quick > /dev/null
echo "== three-node WebSocket smoke run (bourse serve --cluster kafka on tansu; checks one state, nothing refused)"
cargo build --release --locked -q -p bourse
cargo run --release --locked -q -p bourse-benches --bin cluster_ws -- --quick > /dev/null
echo "== partitioned market-data smoke run (three nodes, two copies a partition; checks every read and two copies after a SIGKILL)"
cargo run --release --locked -q -p bourse-benches --bin market_tier -- --quick > /dev/null
echo "== bourse demo"
cargo run --release --locked -q -p bourse -- demo > /dev/null
