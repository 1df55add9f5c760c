#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 20) from its seeds, on the
# pinned stable toolchain (no sanitizer: `--sanitizer none` needs no
# nightly). Installs cargo-fuzz first if it is missing. A finding fails the
# run and leaves its input under fuzz/artifacts/TARGET/.
#
#   crates/aserve-http/fuzz/run.sh            # CI: 20 s a target
#   crates/aserve-http/fuzz/run.sh 3600       # a long run
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
for target in request_head chunked_body proxy_header; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    echo "== fuzz $target for ${seconds}s"
    log=$(mktemp)
    status=0
    cargo fuzz run --sanitizer none -O "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^stat::number_of_executed_units|panicked|SUMMARY' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target found a failure; its input is under $(pwd)/artifacts/$target/" >&2
        exit 1
    fi
    rm -f "$log"
done
