"""scripts/memory_checkpoint_bench.py, the figures behind the README's sensor-memory
checkpoint costs, still runs: tiny, against the broker it starts itself."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_the_memory_checkpoint_bench_restores_every_memory_as_written():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "memory_checkpoint_bench.py"), "--sensors", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    print("\n" + result.stdout)
    # 3 sensors x (96 chunks of 6,100 codes + the record).
    assert "full checkpoint: 291 records" in result.stdout
    assert re.search(r"steady checkpoint \(one new code per sensor\): 6 records", result.stdout)
    assert "restore: 3 sensors" in result.stdout
    assert "every memory as written: True" in result.stdout
    assert re.search(
        r"restore by a monitor in its group: 3 sensors restored and 3 windows scored after it "
        r"in [\d.]+ s; partitions assigned 1 time",
        result.stdout,
    )
