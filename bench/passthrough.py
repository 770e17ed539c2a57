"""Case 1, the ceiling: raw aiokafka consume-and-produce, one output record per input record, no logic.

    python -m bench.passthrough --broker HOST:PORT --source T --sink T2 --group G --count N \
        [--fetch-wait-ms MS] [--session-timeout-ms MS]

At-least-once like the worker: a consumer group, each fetched batch sent (acks=all, same
key, so the same partition), its acknowledgements awaited, then its offsets committed.
Exits once `count` records have passed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def passthrough(
    broker: str, source: str, sink: str, group: str, count: int, fetch_wait_ms: int, session_timeout_ms: int
) -> int:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(300, session_timeout_ms // 4),
        fetch_max_wait_ms=fetch_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    await consumer.start()
    passed = 0
    try:
        while passed < count:
            batch = await consumer.getmany(timeout_ms=500)
            pending: list[asyncio.Future[Any]] = []
            for messages in batch.values():
                for message in messages:
                    pending.append(await producer.send(sink, key=message.key, value=message.value))
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
                passed += len(pending)
    finally:
        await consumer.stop()
        await producer.stop()
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--broker", "--source", "--sink", "--group"):
        parser.add_argument(name, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--fetch-wait-ms", type=int, default=500, help="the consumer's fetch_max_wait_ms")
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    args = parser.parse_args()
    passed = asyncio.run(
        passthrough(
            args.broker, args.source, args.sink, args.group, args.count, args.fetch_wait_ms, args.session_timeout_ms
        )
    )
    print(f"passed {passed} records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
