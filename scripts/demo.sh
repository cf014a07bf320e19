#!/usr/bin/env bash
# A first look at streamae: a local Kafka broker, a model trained on simulated
# normal data, simulated sensors (with anomalies) publishing into the broker, a
# small consumer showing the readings arrive, and the live monitor printing
# alerts as it publishes them.
#   scripts/demo.sh                      # 20 sensors, 1000 readings/s, 60 s
#   DEMO_DURATION=120 DEMO_PORT=19092 scripts/demo.sh
# The model is trained once into .kafka-demo/model/ and reused (delete it to retrain).
# Ctrl-C stops early. On the way out the script stops exactly what it started
# (a broker that was already running from .kafka-demo/ is left running).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

DATA_DIR=.kafka-demo
PORT="${DEMO_PORT:-9092}"
DURATION="${DEMO_DURATION:-60}"
MODEL_DIR="$DATA_DIR/model"
SEED=1  # the same sensors for the training data and the live feed

started_broker=""
watcher_pid=""
simulator_pid=""
monitor_pid=""
cleanup() {
    trap - EXIT INT TERM
    for pid in $simulator_pid $monitor_pid $watcher_pid; do
        kill "$pid" 2>/dev/null || true  # SIGTERM: the monitor commits and leaves its group
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $started_broker ]]; then
        streamae broker stop --data-dir "$DATA_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Print how many readings arrived, every two seconds, with the latest one. `exec`
# makes the background job's pid python's own, so cleanup can stop it.
watch_readings() {
    exec python - <<'PY'
import time

from streamae.config import Settings
from streamae.kafka.clients import make_consumer

settings = Settings.load()
consumer = make_consumer(settings, settings.readings_topic, auto_offset_reset="latest")
count, latest, shown = 0, None, time.monotonic()
while True:
    for records in consumer.poll(timeout_ms=500).values():
        count += len(records)
        latest = records[-1]
    if latest is not None and time.monotonic() - shown >= 2:
        print(f"  readings received: {count:>7}   latest: {latest.value.decode()[:100]}", flush=True)
        shown = time.monotonic()
PY
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

echo "== 2. a model trained on simulated normal data ($MODEL_DIR/)"
if [[ -f $MODEL_DIR/model.json ]]; then
    echo "using the model trained before (delete $MODEL_DIR to retrain)"
else
    streamae simulate --sensors 20 --rate 1000 --duration 60 --anomaly-rate 0 --seed "$SEED" \
        --out "$DATA_DIR/normal.csv"
    streamae train --input "$DATA_DIR/normal.csv" --out "$MODEL_DIR" --arch conv --window 32 \
        --epochs 5 --quiet
fi

echo "== 3. the monitor: readings -> scores, alerts (its log: $DATA_DIR/monitor.log)"
streamae monitor --model "$MODEL_DIR" --group streamae-demo --metrics-port 0 --print-alerts \
    2>"$DATA_DIR/monitor.log" &
monitor_pid=$!
until grep -q "partitions assigned: readings" "$DATA_DIR/monitor.log" 2>/dev/null; do
    kill -0 "$monitor_pid" 2>/dev/null || { tail -5 "$DATA_DIR/monitor.log"; exit 1; }
    sleep 0.5
done

echo "== 4. simulated sensors with anomalies -> topic 'readings' at $STREAMAE_BOOTSTRAP_SERVERS for ${DURATION}s"
watch_readings &
watcher_pid=$!
streamae simulate --sensors 20 --rate 1000 --duration "$DURATION" --anomaly-rate 0.05 \
    --seed "$SEED" &
simulator_pid=$!
wait "$simulator_pid"
simulator_pid=""
sleep 3  # let the watcher and the monitor catch up with the last readings
kill "$monitor_pid" && wait "$monitor_pid" || true
monitor_pid=""
grep "monitor stopped" "$DATA_DIR/monitor.log" || true

echo "== done"
