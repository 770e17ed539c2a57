"""What `create_app` sets on Faust beyond Faust's own settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from processor.config.settings import Settings
from processor.worker.app import create_app


def fetch_wait_ms(settings: Settings) -> int:
    """The fetch wait of the input consumer Faust would start for this app (built, never started)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the app's loop
    try:
        app = create_app(settings)

        consumer: Any = app.consumer
        thread = consumer._thread  # noqa: SLF001 -- the consumer's thread, never started here

        async def build() -> int:
            # The faust and aiokafka internals FUNNEL_FETCH_MAX_WAIT leans on (README Design).
            consumer = thread._create_worker_consumer(app.transport)  # noqa: SLF001
            try:
                return int(consumer._fetch_max_wait_ms)  # noqa: SLF001
            finally:
                await consumer.stop()

        try:
            return loop.run_until_complete(build())
        finally:
            thread.thread_loop.close()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_the_input_consumer_waits_for_a_fetch_at_most_fetch_max_wait(tmp_path: Path) -> None:
    assert fetch_wait_ms(Settings(store="memory", data_dir=tmp_path, fetch_max_wait_s=0.05)) == 50
    assert fetch_wait_ms(Settings(store="memory", data_dir=tmp_path)) == 1500  # Faust's own
