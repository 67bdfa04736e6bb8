#!/usr/bin/env bash
# Runs every check and test of the workspace. This is the README's test command and what CI
# runs (.ci/run). It installs what the tests need on a fresh machine (for now: the rustfmt and
# clippy components of the machine's toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "${component}"
  fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== benchmark smoke run (checks every venue's final book against the model; figures not kept)"
cargo run --release --locked -q -p bourse-benches --bin throughput -- --ops 200000 --warmup 20000 --reps 1 > /dev/null
echo "== latency smoke run (pipeline open-loop latency; checks each run's state against a journal replay)"
cargo run --release --locked -q -p bourse-benches --bin latency -- --quick > /dev/null
echo "== bourse demo"
cargo run --release --locked -q -p bourse-gateway --bin bourse -- demo > /dev/null
