#!/usr/bin/env bash
# Builds every cargo-fuzz target once and runs each for a bounded time, failing on any crash,
# timeout or out-of-memory. Used by .ci/run; see fuzz/README.md for the choices made here.
#
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   space-separated subset of targets (default: all)
#   FUZZ_RSS_MB    libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_TIMEOUT   libFuzzer -timeout, seconds per input (default 10)
#   FUZZ_BUILD_FLAGS  cargo fuzz build flags (default "-s none"; release mode is implied)
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.1
seconds=${FUZZ_SECONDS:-30}
rss_mb=${FUZZ_RSS_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
all_targets=(remote_write_decode remote_write_borrowed exposition_parse json_flatten promql_eval rule_file_load alertmanager_config_load chunk_decode)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

# cargo-fuzz passes nightly-only flags (-Zsanitizer=..., -Cpasses=sancov-module, --cfg fuzzing);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1

if [[ "$(cargo fuzz --version 2>/dev/null || true)" != *"$CARGO_FUZZ_VERSION"* ]]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# `-s none`: coverage instrumentation without AddressSanitizer. The workspace denies unsafe code,
# so ASan would mostly watch dependencies, at about twice the build and run time. Release mode
# with debug assertions (cargo-fuzz's default) keeps overflow checks and debug_assert!s.
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:--s none}"
triple=$(rustc -vV | sed -n 's/^host: //p')
profile=release
[[ " ${build_flags[*]} " == *" --dev "* || " ${build_flags[*]} " == *" -D "* ]] && profile=debug
bin_dir="target/$triple/$profile"

start=$(date +%s)
cargo fuzz build "${build_flags[@]}"
built=$(date +%s)
echo "fuzz: build took $((built - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One target per core at a time (FUZZ_JOBS): each libFuzzer process is single-threaded.
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_one() {
  local t=$1 t0
  t0=$(date +%s)
  mkdir -p "$work/$t" "artifacts/$t"
  # New inputs go to the scratch corpus (first directory); the committed seeds stay untouched.
  if "$bin_dir/$t" "$work/$t" "corpus/$t" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$per_input" \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$work/$t.log" 2>&1; then
    echo "fuzz: $t ok after $(($(date +%s) - t0)) s: $(grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$t.log" | tr -s ' \n' ' ')"
  else
    echo "fuzz: $t FAILED after $(($(date +%s) - t0)) s; last lines of its log:"
    tail -n 40 "$work/$t.log"
    echo "fuzz: reproducer(s) in fuzz/artifacts/$t/: $(ls "artifacts/$t" | tr '\n' ' ')"
    touch "$work/$t.failed"
  fi
}
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  fuzz_one "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do [[ -e "$work/$t.failed" ]] && failed+=("$t"); done
echo "fuzz: total $(($(date +%s) - start)) s (build $((built - start)) s)"
if ((${#failed[@]})); then
  echo "fuzz: FAILED targets: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash"
