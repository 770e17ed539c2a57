"""Experimental workaround: Tansu answers ListOffsets(latest) with
(base offset of the last record batch + 1), so faust's changelog highwaters
are short whenever the last batch holds >1 record.  The high watermark carried
in a Fetch response is correct, so ask for it with a throwaway consumer.

Usage: import tansu_fix; tansu_fix.install()  (before app.main())
"""
import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer

log = logging.getLogger("tansu_fix")


async def fetch_highwaters(bootstrap, partitions, short, timeout=5.0):
    """Return {tp: highwater} using Fetch responses; fall back to `short`."""
    todo = [tp for tp in partitions if short.get(tp)]
    result = dict(short)
    if not todo:
        return result
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=50, group_id=None)
    await probe.start()
    try:
        probe.assign(todo)
        for tp in todo:
            probe.seek(tp, max(short[tp] - 1, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await probe.getmany(timeout_ms=100)
            if all(probe.highwater(tp) is not None for tp in todo):
                break
        for tp in todo:
            hw = probe.highwater(tp)
            if hw is not None and hw != short[tp]:
                log.warning("tansu_fix: %s ListOffsets latest=%s, fetch highwater=%s",
                            tp, short[tp], hw)
            if hw is not None:
                result[tp] = max(hw, short[tp])
    finally:
        await probe.stop()
    return result


def install():
    from faust.transport.drivers import aiokafka as drv

    orig = drv.AIOKafkaConsumerThread._highwaters

    async def _highwaters(self, partitions):
        short = await orig(self, partitions)
        if self.consumer.in_transaction:
            return short
        bootstrap = [f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker]
        return await fetch_highwaters(bootstrap, list(partitions), dict(short))

    drv.AIOKafkaConsumerThread._highwaters = _highwaters
    log.warning("tansu_fix installed")
