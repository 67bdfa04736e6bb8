#!/usr/bin/env bash
# Runs every coverage-guided fuzz target of fuzz/ (cargo-fuzz and libFuzzer; the checks are
# fuzz-checks/src/lib.rs, docs/testing.md says what each checks) for FUZZ_SECONDS each
# (default 30), starting from its seed corpus (fuzz/corpus/<target>/, read only: what the run
# finds goes to a scratch directory, or to FUZZ_CORPUS_DIR/<target> to keep it). The machine's
# toolchain is stable, so the targets are built without a sanitizer (`-s none`): a panic, an
# abort, a hang over 10 s or more than 2 GiB is what fails a run. A failure prints the input's
# path (fuzz/artifacts/<target>/): copy it to fuzz/regressions/<target>/ (cargo test then runs
# it through the check) before fixing the bug. Installs cargo-fuzz if it is missing.
#
#   scripts/fuzz.sh                    # every target, 30 s each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh feed_parse   # one target, an hour
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-30}"
if ! cargo fuzz --version 2> /dev/null | grep -q "${CARGO_FUZZ_VERSION}"; then
  echo "== cargo install cargo-fuzz ${CARGO_FUZZ_VERSION}"
  cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION}" --locked
fi
cargo fuzz build -s none --release
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
total_runs=0
for target in "${targets[@]}"; do
  if [ -n "${FUZZ_CORPUS_DIR:-}" ]; then
    work="${FUZZ_CORPUS_DIR}/${target}"
    mkdir -p "${work}"
  else
    work="$(mktemp -d)"
  fi
  log="$(mktemp)"
  if ! cargo fuzz run -s none --release "${target}" "${work}" "fuzz/corpus/${target}" -- \
    -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > "${log}" 2>&1; then
    tail -n 40 "${log}" >&2
    echo "fuzz target ${target} failed: copy the input named above into fuzz/regressions/${target}/" >&2
    exit 1
  fi
  runs="$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "${log}" | grep -Eo '[0-9]+$' || echo 0)"
  coverage="$(grep -Eo 'cov: [0-9]+' "${log}" | tail -n 1 || true)"
  echo "fuzz ${target}: ${runs} inputs in ${seconds} s, ${coverage}, no failure"
  total_runs=$((total_runs + runs))
  [ -n "${FUZZ_CORPUS_DIR:-}" ] || rm -rf "${work}"
  rm -f "${log}"
done
echo "fuzz: ${#targets[@]} targets, ${total_runs} inputs, no failure"
