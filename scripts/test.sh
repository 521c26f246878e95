#!/usr/bin/env bash
# The test command (README, .ci/run): installs the test oracles, then checks formatting and
# lints, and runs every test. Tests that need root or a tool say SKIP with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --features fault-injection --locked -- -D warnings
cargo test --all-targets --features fault-injection --locked
