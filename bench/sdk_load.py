"""The bare SDK side of P2, run as its own process so its CPU time is measured alone:
``python -m bench.sdk_load ENDPOINT CONCURRENCY`` with a JSON list of identity ids on its first
stdin line; then one command a line: ``run N`` makes N calls with CONCURRENCY callers and prints
one JSON line with the CPU seconds and wall seconds they took; ``quit`` ends it. It stays up
between commands so P2 can alternate host and SDK chunks."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

from .measure import sdk_session, sdk_token


async def load(endpoint: str, concurrency: int, identities: list[str]) -> None:
    async with sdk_session(endpoint) as client:
        async def burst(count: int) -> None:
            numbers = itertools.count()
            ids = itertools.cycle(identities)

            async def caller() -> None:
                while next(numbers) < count:
                    await sdk_token(client, next(ids))

            await asyncio.gather(*(caller() for _ in range(concurrency)))

        await burst(concurrency * 2)  # warm: credential token, a pool of connections
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line or line == "quit":
                return
            requests = int(line.split()[1])
            cpu, wall = time.process_time(), time.perf_counter()
            await burst(requests)
            print(json.dumps({"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
                              "requests": requests}), flush=True)


def main() -> None:
    endpoint, concurrency = sys.argv[1], int(sys.argv[2])
    identities = json.loads(sys.stdin.readline())
    asyncio.run(load(endpoint, concurrency, identities))


if __name__ == "__main__":
    main()
