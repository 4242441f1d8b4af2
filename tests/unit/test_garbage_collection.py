"""Loading the app settles the worker's garbage collector (shared/garbage_collection.py): what the
import left alive is frozen out of full collections and the youngest generation is collected less
often. Checked in a fresh interpreter, as the Functions worker loads the app; the figure these
settings buy is the throughput benchmark's (bench/throughput.py), not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
before = {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
import function_app
print(json.dumps({"before": before, "after": {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}}))
"""


def test_loading_the_app_freezes_what_the_import_left_and_raises_the_youngest_threshold():
    env = {key: value for key, value in os.environ.items() if key != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    answer = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    seen = json.loads(answer.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"threshold": 700, "frozen": 0}
    assert seen["after"]["threshold"] == 10_000
    assert seen["after"]["frozen"] > 10_000  # the app's modules and the SDKs' it imported are out of the collector's sight
