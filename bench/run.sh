#!/usr/bin/env bash
# seedpart's benchmark against the tools users run today (issue 6; BENCHMARKS.md).
#
#   bench/run.sh            # the full run: medians, ratios, PASS/MISS; results in bench/results/
#   bench/run.sh --quick    # a smoke run (4 GiB and 4 TiB disks, 2 repetitions), under 2 minutes;
#                           # exits 0 whatever the figures (it proves the benchmark runs)
#   bench/run.sh --reps 5   # any other bench.py option is passed on (bench/bench.py --help)
#
# Needs root (loop devices, mount) and Debian's apt for the peers. Exit status: 0 when every
# target is met, 1 when one is missed, 2 when the benchmark itself failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

"$here/deps.sh"
# Its own target directory: concurrent builds of other profiles elsewhere in the tree would
# otherwise replace the binary under measurement.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target/bench}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/seedpart

rc=0
/usr/bin/python3 "$here/bench.py" --bin "$bin" "$@" || rc=$?
exit "$rc"
