"""The bare SDK side of P2, run as its own process so its CPU time is measured alone:
``python -m bench.sdk_load ENDPOINT CONCURRENCY REQUESTS`` with identity ids on stdin, one a
line; prints one JSON line with the CPU seconds and wall seconds of the measured requests."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

from .measure import sdk_session, sdk_token


async def load(endpoint: str, concurrency: int, requests: int, identities: list[str]) -> dict[str, float]:
    async with sdk_session(endpoint) as client:
        async def burst(count: int) -> None:
            numbers = itertools.count()
            ids = itertools.cycle(identities)

            async def caller() -> None:
                while next(numbers) < count:
                    await sdk_token(client, next(ids))

            await asyncio.gather(*(caller() for _ in range(concurrency)))

        await burst(concurrency * 2)  # warm: credential token, a pool of connections
        cpu, wall = time.process_time(), time.perf_counter()
        await burst(requests)
        return {"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall, "requests": requests}


def main() -> None:
    endpoint, concurrency, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    identities = [line.strip() for line in sys.stdin if line.strip()]
    print(json.dumps(asyncio.run(load(endpoint, concurrency, requests, identities))))


if __name__ == "__main__":
    main()
