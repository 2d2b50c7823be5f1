#!/usr/bin/env bash
# The whole test suite: set-up, unit tests, end-to-end tests against a real daemon on a fresh
# SoftHSM token per test. This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
export TRUSTD_TEST_VENV=${TRUSTD_TEST_VENV:-$PWD/target/pyenv}
cargo fmt --check
./ci/check-boundaries.sh
cargo clippy --locked --all-targets -- -D warnings
# Benchmarks (benches/) are not tests: run them with `cargo bench`.
cargo test --locked --lib --bins --tests -- --test-threads=2
