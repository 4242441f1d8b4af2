"""P3: cold start, as the import of function_app in a fresh process next to the import of only
the SDKs the app uses. Clients are built on first use, so the app's import should cost little
more than the SDKs' own. Each sample is a fresh interpreter; the two kinds alternate."""

from __future__ import annotations

import ast
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

_TIMED_IMPORT = ("import time; t = time.perf_counter(); {statement}; e = time.perf_counter() - t; import sys; "
                 "print(sorted({{m.split('.')[0] for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))}})); "
                 "print(e)")

#: Telemetry distributions that may be installed beside the app (requirements.txt) but stay
#: unloaded until telemetry is configured.
TELEMETRY_DISTRIBUTIONS = ("azure-monitor-opentelemetry", "opentelemetry-sdk", "opentelemetry-api",
                           "azure-core-tracing-opentelemetry")

_telemetry_loaded: set[str] = set()


def _import_seconds(statement: str) -> float:
    done = subprocess.run([sys.executable, "-c", _TIMED_IMPORT.format(statement=statement)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    *_, loaded, seconds = done.stdout.strip().splitlines()
    if statement == "import function_app":
        _telemetry_loaded.update(ast.literal_eval(loaded))  # a list of names printed by the child
    return float(seconds)


def _installed(names: tuple[str, ...]) -> list[str]:
    from importlib import metadata

    found = []
    for name in names:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return found


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
        "telemetry_installed": _installed(TELEMETRY_DISTRIBUTIONS),
        "telemetry_loaded_by_import": sorted(_telemetry_loaded),
    }
