#!/usr/bin/env bash
# Runs sixboot's libFuzzer targets (fuzz/fuzz_targets/) one after another, each for
# FUZZ_SECONDS (default 60) with at most FUZZ_RSS_MB (default 1024) of memory, and prints
# per target: seconds, total execs, execs/s, corpus size and crashes. With FUZZ_RUNS set,
# each target stops after that many executions instead, FUZZ_SECONDS still bounding it.
#
# Usage: scripts/fuzz.sh [TARGET...]   (default: every target)
#
# The corpus of each target lives in fuzz/corpus/<target> (git-ignored, kept between runs
# so each run goes on from the last); seeds from tests/fixtures/ are (re)written into it
# first. A crash leaves its input in fuzz/artifacts/<target>/ and makes the script fail
# once every target has run. libFuzzer's output: fuzz/target/logs/<target>.log.
#
# cargo-fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
rss_mb=${FUZZ_RSS_MB:-1024}
all=(dhcp4 dhcp6 ra tftp config http_path report)
targets=("${@:-${all[@]}}")
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cargo run -q --release --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus
cargo fuzz build

logs=fuzz/target/logs
mkdir -p "$logs"
failed=()
rows=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "fuzz: $t for ${seconds}s" >&2
  # -timeout: an input that takes 10 s is a hang; -print_final_stats: the figures below.
  rc=0
  cargo fuzz run "$t" "fuzz/corpus/$t" -- ${runs:+-runs="$runs"} \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" \
    -timeout=10 -print_final_stats=1 >"$logs/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$logs/$t.log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
  if [ -n "$runs" ] && [ "${execs:-0}" -lt "$runs" ]; then
    echo "fuzz: $t ran ${execs:-0} of $runs executions in ${seconds}s" >&2
    failed+=("$t")
  fi
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed+=("$t")
    tail -40 "$logs/$t.log" >&2
  fi
  rows+=("$(printf '%-10s %6s %12s %9s %8s %7s %8s' "$t" "$seconds" "${execs:-?}" "${rate:-?}" \
    "$corpus" "${rss:-?}" "$crashes")")
done

printf '%-10s %6s %12s %9s %8s %7s %8s\n' target seconds execs execs/s corpus rss_mb crashes
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes or errors in: ${failed[*]} (inputs in fuzz/artifacts/, logs in $logs/)" >&2
  exit 1
fi
