"""P3: cold start, as the import of function_app in a fresh process next to the import of only
the SDKs the app uses. Clients are built on first use, so the app's import should cost little
more than the SDKs' own. Each sample is a fresh interpreter; the two kinds alternate."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from .measure import median, percentile
from .stack import ROOT

#: Every third-party module the app's code imports anywhere (at import time or on first use).
SDK_MODULES = (
    "azure.functions",
    "azure.communication.identity.aio",
    "azure.data.tables.aio",
    "azure.identity.aio",
    "aiohttp",
    "jwt",
)

_TIMED_IMPORT = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"


def _import_seconds(statement: str) -> float:
    done = subprocess.run([sys.executable, "-c", _TIMED_IMPORT.format(statement=statement)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def run(samples: int) -> dict[str, Any]:
    app: list[float] = []
    sdks: list[float] = []
    sdk_statement = "import " + ", ".join(SDK_MODULES)
    _import_seconds("import function_app")  # warm the OS file cache for both
    _import_seconds(sdk_statement)
    for _ in range(samples):
        app.append(_import_seconds("import function_app"))
        sdks.append(_import_seconds(sdk_statement))
    return {
        "samples": samples,
        "sdk_modules": list(SDK_MODULES),
        "function_app_median_ms": round(median(app) * 1000, 1),
        "function_app_p95_ms": round(percentile(app, 95) * 1000, 1),
        "sdks_median_ms": round(median(sdks) * 1000, 1),
        "sdks_p95_ms": round(percentile(sdks, 95) * 1000, 1),
        "ratio": round(median(app) / median(sdks), 3),
    }
