"""How the worker's garbage collector is set once the app is loaded.

Under load a token request allocates enough short-lived containers that CPython's youngest
generation (threshold 700) is collected several times per request, and every full collection
walks the tens of thousands of objects that importing the app and its SDKs left behind. The
throughput benchmark (bench/throughput.py, "without the app's GC settings") measures the same
host with and without these two settings in the same rounds.
"""

from __future__ import annotations

import gc

#: Allocations (net container objects) before the youngest generation is collected; CPython's
#: default is 700. Cycles among request objects are still collected, 14 times less often.
YOUNGEST_THRESHOLD = 10_000


def settle_after_import() -> None:
    """Move what the import left alive out of the collector's sight (gc.freeze: those objects
    live as long as the process anyway) and collect the youngest generation less often. No
    collection is run here, so the import stays as cheap as it was (cold start)."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
