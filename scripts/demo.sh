#!/usr/bin/env bash
# The whole system on this machine: a local Apache Kafka broker, a model
# (trained once, then reused), a sensor feed, the live monitor printing alerts as
# it publishes them, and the dashboard.
#   scripts/demo.sh              # 20 simulated sensors with injected anomalies
#   scripts/demo.sh --replay     # a real recorded series (NAB machine temperature)
# Environment: DEMO_DURATION (seconds of feed; default 86400, a day),
# DEMO_PORT (Kafka, default 9092), DEMO_DASHBOARD_PORT (default 8501),
# DEMO_DIR (broker data, models and logs; default .kafka-demo).
# Ctrl-C stops everything the script started, and nothing else (a broker that
# was already running from DEMO_DIR is left running).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=simulate
case "${1:-}" in
    "") ;;
    --replay) MODE=replay ;;
    -h | --help) sed -n '2,11p' "$0" | cut -c3-; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

source scripts/_venv.sh

DATA_DIR="${DEMO_DIR:-.kafka-demo}"
PORT="${DEMO_PORT:-9092}"
DASHBOARD_PORT="${DEMO_DASHBOARD_PORT:-8501}"
DURATION="${DEMO_DURATION:-86400}"
SEED=1  # the same sensors for the training data and the live feed
REPLAY_FILE=scripts/demo-data/machine_temperature_system_failure.csv
# The real series gets the detection profile the NAB benchmark measured, in training and live.
PROFILE=()
[[ $MODE == replay ]] && PROFILE=(--config benchmarks/nab.toml)
mkdir -p "$DATA_DIR"

started_broker=""
pids=()
cleanup() {
    trap - EXIT INT TERM
    # SIGTERM: the monitor finishes its batch and commits; the others just stop.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $started_broker ]]; then
        streamae broker stop --data-dir "$DATA_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_log() {  # wait_for_log PID FILE TEXT: until FILE has TEXT, or PID died
    until grep -q "$3" "$2" 2>/dev/null; do
        kill -0 "$1" 2>/dev/null || { echo "demo.sh: failed, see $2:" >&2; tail -5 "$2" >&2; exit 1; }
        sleep 0.5
    done
}

echo "== 1. a local Apache Kafka broker ($DATA_DIR/)"
if streamae broker status --data-dir "$DATA_DIR" >/dev/null; then
    echo "using the broker already running from $DATA_DIR"
else
    streamae broker start --port "$PORT" --data-dir "$DATA_DIR"
    started_broker=1
fi
STREAMAE_BOOTSTRAP_SERVERS=$(python -c "from streamae.kafka.broker import LocalBroker; print(LocalBroker('$DATA_DIR').bootstrap)")
export STREAMAE_BOOTSTRAP_SERVERS
# Each mode has its own topics and consumer group, so switching modes starts clean.
export STREAMAE_READINGS_TOPIC="demo-$MODE-readings" STREAMAE_SCORES_TOPIC="demo-$MODE-scores"
export STREAMAE_ALERTS_TOPIC="demo-$MODE-alerts" STREAMAE_DEAD_LETTER_TOPIC="demo-$MODE-dead-letter"
export STREAMAE_STATE_TOPIC="demo-$MODE-state" STREAMAE_GROUP_ID="demo-$MODE"

MODEL_DIR="$DATA_DIR/model-$MODE"
echo "== 2. a model trained on normal data ($MODEL_DIR/)"
if [[ -f $MODEL_DIR/model.json ]]; then
    echo "using the model trained before (delete $MODEL_DIR to retrain)"
elif [[ $MODE == simulate ]]; then
    streamae simulate --sensors 20 --rate 1000 --duration 60 --anomaly-rate 0 --seed "$SEED" \
        --out "$DATA_DIR/normal.csv"
    streamae train --input "$DATA_DIR/normal.csv" --out "$MODEL_DIR" --arch conv --window 32 \
        --epochs 5 --quiet
else
    rows=$(($(wc -l <"$REPLAY_FILE") * 15 / 100))  # NAB's rule: train on the first 15%
    streamae train --input "$REPLAY_FILE" --max-rows "$rows" --out "$MODEL_DIR" "${PROFILE[@]}" \
        --quiet
fi

echo "== 3. the dashboard: http://127.0.0.1:$DASHBOARD_PORT (its log: $DATA_DIR/dashboard.log)"
streamae dashboard --port "$DASHBOARD_PORT" >"$DATA_DIR/dashboard.log" 2>&1 &
pids+=($!)

echo "== 4. the monitor: readings -> scores, alerts (its log: $DATA_DIR/monitor.log)"
streamae monitor --model "$MODEL_DIR" "${PROFILE[@]}" --metrics-port 0 --print-alerts \
    2>"$DATA_DIR/monitor.log" &
pids+=($!)
wait_for_log "$!" "$DATA_DIR/monitor.log" "partitions assigned"

if [[ $MODE == simulate ]]; then
    echo "== 5. 20 simulated sensors with anomalies -> Kafka for ${DURATION}s (Ctrl-C stops)"
    streamae simulate --sensors 20 --rate 1000 --duration "$DURATION" --anomaly-rate 0.05 \
        --seed "$SEED" 2>"$DATA_DIR/feed.log" &
else
    echo "== 5. replaying $REPLAY_FILE (one 5-minute reading every 0.1 s; Ctrl-C stops)"
    timeout "$DURATION" streamae replay "$REPLAY_FILE" --speed 3000 2>"$DATA_DIR/feed.log" &
fi
pids+=($!)
echo "   alerts as the monitor publishes them:"
wait "${pids[-1]}" || true
sleep 3  # let the monitor score the last readings before stopping it
echo "== done"
