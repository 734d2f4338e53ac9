#!/usr/bin/env bash
# Coverage-guided fuzzing (atheris) of the sio_wsgi decoders.
#
#     bash tests/fuzz/run_atheris.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets: eio_payload (Engine.IO polling payloads), sio_packet (Socket.IO packets
# + attachment assembler + msgpack), ws_frames (WebSocket frame parser). Default:
# 60 seconds each, all three. Needs `pip install atheris` (a compiled extension;
# it needs clang/libFuzzer only when no wheel fits your Python).
#
# The seeds in tests/fuzz/corpus/<target>/ are read only; the growing corpus and
# any crash input go to $SIO_FUZZ_WORK/<target>/ (default /tmp/sio_wsgi_fuzz), so
# repeated runs build on each other. A crash makes the script exit non-zero.
# Any exception other than RemoteProtocolError is a crash.
set -uo pipefail
cd "$(dirname "$0")"
# the targets import this checkout's sio_wsgi
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(eio_payload sio_packet ws_frames)
PYTHON=${PYTHON:-python}

"$PYTHON" -c "import atheris" 2>/dev/null || { echo "atheris is not installed: pip install atheris"; exit 2; }

WORK=${SIO_FUZZ_WORK:-${TMPDIR:-/tmp}/sio_wsgi_fuzz}
status=0
for target in "${TARGETS[@]}"; do
    corpus="$WORK/$target/corpus"
    crashes="$WORK/$target/crashes"
    mkdir -p "$corpus" "$crashes"
    log=$(mktemp)
    echo "=== $target: ${SECONDS_PER_TARGET}s (corpus $corpus)"
    "$PYTHON" "fuzz_$target.py" "$corpus" "corpus/$target" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|Uncaught|==ERROR|Error:" "$log" | tail -8
    if [ $rc -ne 0 ]; then
        echo "!!! $target: crash (exit $rc); see $crashes/ and the log below"
        tail -40 "$log"
        status=1
    fi
    rm -f "$log"
done
exit $status
