"""``streamae bench``: how fast the monitor is, against what it could be, on this machine.

One run, one machine, one broker (its own ``LocalBroker`` unless given one):

a. model ceiling — windows/s of the bare batched forward pass of the product's
   default architecture (``TrainConfig()`` with the benchmark's window), for C
   channels and a wide model, on every core: the better of all threads in one
   process and one one-thread process per core (how the monitor group runs); and
   the naive baseline: one window per pass;
b. consume ceiling — readings/s a bare consumer reads and decodes;
c. monitor — the real ``Monitor`` (own process) from the start of N preloaded
   readings, stride 1, until every one is scored, published and committed;
d. latency — produce time to the score's append time on the scores topic,
   p50/p95/p99, at half the rate of c;
e. memory — RSS growth per sensor of the pipeline's state with many sensors.

>>> result = run_bench(BenchConfig.quick())  # doctest: +SKIP
>>> result["monitor_readings_per_s"] / result["model_ceiling_windows_per_s"]  # doctest: +SKIP
0.62
"""

from streamae.bench.run import KEYS, BenchConfig, run_bench

__all__ = ["KEYS", "BenchConfig", "run_bench"]
