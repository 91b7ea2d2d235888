#!/usr/bin/env bash
# One check of a GPU (or any accelerator) machine, in under 8 minutes: the step benchmark
# at 1 M agents and the whole city, an ensemble, a gradient check and the default command
# end to end; a table at the end, and every part's log and JSON in OUT.
#
#   pip install ".[cuda12]"            # JAX 0.10.2 with NVIDIA's CUDA 12 wheels
#   bash benchmarks/device_check.sh [OUT]   # OUT defaults to $OUT, else out/device_check
#
# Each part runs under its own time limit (seconds, overridable: STEP_LIMIT, CITY_LIMIT,
# ENSEMBLE_LIMIT, GRADIENT_LIMIT, COMMAND_LIMIT) so that one slow part cannot take the rest's
# time; a part that fails or runs out of time is reported as such in the table and the
# script goes on. Record the table, with the GPU's name it prints, in benchmarks/RESULTS.md.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-out/device_check}}"
mkdir -p "$OUT_DIR"
export JAXSIM_CACHE_DIR="${JAXSIM_CACHE_DIR:-$OUT_DIR/cache}"
PY="${PYTHON:-python}"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

say() { echo "$@" | tee -a "$SUMMARY"; }

part() {  # part NAME LIMIT COMMAND...: run one part, log it, note its status and seconds
    local name="$1" limit="$2"; shift 2
    local begin end status
    begin=$(date +%s.%N)
    timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    status=$?
    end=$(date +%s.%N)
    local seconds
    seconds=$(awk -v a="$begin" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    case $status in
        0) say "part $name: ok in $seconds s" ;;
        124|130|137) say "part $name: OUT OF TIME after $seconds s (limit $limit s)" ;;
        *) say "part $name: FAILED (exit $status) after $seconds s; see $OUT_DIR/$name.log" ;;
    esac
}

say "== device check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; } \
    | sed 's/^/gpu: /' | tee -a "$SUMMARY"
"$PY" -c "import jax; print('jax', jax.__version__, 'backend', jax.default_backend(), 'devices', jax.devices())" \
    2>&1 | tee -a "$SUMMARY"

# 1. The COVID step at 1 M agents (fresh process per size: peak memory is its own).
part step_1m "${STEP_LIMIT:-120}" "$PY" benchmarks/bench_step.py --sizes 1000000 --days 28 --repeats 2 \
    --json "$OUT_DIR/step_1m.json"
# 2. The whole city: 8,550,333 agents, about 118 M directed contact edges.
part step_city "${CITY_LIMIT:-150}" "$PY" benchmarks/bench_step.py --sizes "" --nyc --days 28 --repeats 1 \
    --json "$OUT_DIR/step_city.json"
# 3. An ensemble of 256 members on Astoria (47,303 agents): members per second, vmapped vs one by one.
part ensemble "${ENSEMBLE_LIMIT:-90}" "$PY" benchmarks/bench_ensemble.py --agents astoria --members 256 \
    --repeats 1 --sequential 4
# 4. A gradient against finite differences at 1 M agents (SIR; the cost as a multiple of a forward run).
part gradient "${GRADIENT_LIMIT:-90}" "$PY" benchmarks/bench_gradients.py --models sir --agents 1000000 \
    --seeds 4 --estimators straight_through
# 5. The default command end to end, twice (the second with a warm compile cache).
part command_cold "${COMMAND_LIMIT:-60}" "$PY" -m jaxsim covid_nyc --out "$OUT_DIR/covid_nyc" --no-progress
part command_warm "${COMMAND_LIMIT:-60}" "$PY" -m jaxsim covid_nyc --out "$OUT_DIR/covid_nyc" --no-progress

say ""
say "== tables (the last lines of each part's log)"
for name in step_1m step_city ensemble gradient command_cold command_warm; do
    say "-- $name"
    tail -n 14 "$OUT_DIR/$name.log" >> "$SUMMARY"
done
cat "$SUMMARY"
