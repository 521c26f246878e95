#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 30), one after the
# other, after generating the seed corpora if they are missing (fuzz/seeds.sh). Exits non-zero
# when a target finds a crash (panic, timeout, out-of-memory); the input that did it is left in
# fuzz/artifacts/<target>/ and the end of libFuzzer's output is printed.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain (cargo-fuzz builds with sanitizer flags); without it this prints
# SKIP and exits 0. Installs cargo-fuzz from crates.io when it is missing.
# Environment: FUZZ_JOBS (default 1), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per
# input, default 10), FUZZ_LOGS (directory for the full logs, default fuzz/target/logs).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
case $secs in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
shift $(($# > 0 ? 1 : 0))

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIP: no nightly toolchain (cargo-fuzz needs it; rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || {
    echo "fuzz: no targets found" >&2
    exit 1
}

# The seeds are made with the tools the tests use as oracles; scripts/deps.sh installs them.
for tool in sgdisk sfdisk mkfs.vfat mcopy genisoimage xorriso; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ -x scripts/deps.sh ] && ! scripts/deps.sh; then
            echo "fuzz: scripts/deps.sh failed; seeds that need a missing tool are skipped" >&2
        fi
        break
    fi
done
fuzz/seeds.sh
# One build of every target up front, so that the time limits below are spent fuzzing.
(cd fuzz && cargo +nightly fuzz build)

logs=${FUZZ_LOGS:-fuzz/target/logs}
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$logs/$t.log
    echo "fuzz: $t for ${secs}s" >&2
    set +e
    (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -jobs="${FUZZ_JOBS:-1}" -workers="${FUZZ_JOBS:-1}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
        -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    # With -jobs, libFuzzer writes each job's output to fuzz-<n>.log in its working directory
    # (and copies it into its own output, which is in $log already).
    rm -f fuzz/fuzz-*.log
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    summary+=("$(printf '%-13s rc=%-3s execs=%-10s exec/s=%-7s %s' "$t" "$rc" "${execs:-?}" \
        "${speed:-?}" "$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' <<<"$last" || true)")")
    if [ $rc -ne 0 ] || grep -qE '^==[0-9]+== ?ERROR: libFuzzer|panicked at|^SUMMARY: ' "$log"; then
        failed+=("$t")
        echo "fuzz: $t FOUND A CRASH (rc $rc); the end of $log:" >&2
        tail -n 60 "$log" >&2
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in $logs/)"
    exit 1
fi
echo "fuzz: OK: ${#targets[@]} targets, ${secs}s each, no crash"
