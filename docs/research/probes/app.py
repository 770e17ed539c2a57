"""Minimal faust worker for probing Tansu behaviour.

Env knobs:
  BROKER      kafka://127.0.0.1:19092
  APP_ID      consumer group / app id (default probe-app)
  STORE       memory:// or rocksdb://
  DATADIR     data dir (rocksdb files live under it)
  WEB_PORT    web port (default 16066)
  SESSION     broker_session_timeout seconds (default 6)
  HEARTBEAT   broker_heartbeat_interval seconds (default 1)
  IN_TOPIC / OUT_TOPIC
  T0          epoch seconds the parent launched us (for startup timing)
  SLOW_MS     artificial per-event sleep in ms (to make SIGTERM land mid-stream)
  ACKS, REBALANCE, COMMIT_INTERVAL   producer_acks / broker_rebalance_timeout / broker_commit_interval
  WAIT_EMPTY=1   stream_wait_empty=True (default False)
  WEB_ENABLED=0  web_enabled=False in App() (note: overridden by CLI --with-web default!)
  TRACE=path     append "<ts> p<partition> o<offset> <seq>" per processed event
  PROM=1         setup_prometheus_sensors with a private CollectorRegistry on /metrics
  HW_FIX=1       install tansu_fix (correct changelog highwaters via Fetch HW)
  COMMIT_DEBUG=1 log slow producer.flush / commit steps

Input:  key=b"k<n>", value=b"<seq>"
Table:  counts[key] = ascii int (raw serializer), reassigned per event
Output: key=same, value=b"<seq>:<count>"
"""
import asyncio
import logging
import os
import time

import faust

T0 = float(os.environ.get("T0", time.time()))
IN_TOPIC = os.environ.get("IN_TOPIC", "probe-in")
OUT_TOPIC = os.environ.get("OUT_TOPIC", "probe-out")
SLOW = float(os.environ.get("SLOW_MS", "0")) / 1000.0
SESSION = float(os.environ.get("SESSION", "6"))

app = faust.App(
    os.environ.get("APP_ID", "probe-app"),
    broker=os.environ.get("BROKER", "kafka://127.0.0.1:19092"),
    store=os.environ.get("STORE", "memory://"),
    datadir=os.environ.get("DATADIR", "/tmp/research/data/default"),
    topic_partitions=4,
    topic_replication_factor=1,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    producer_acks=int(os.environ.get("ACKS", "-1")),
    broker_session_timeout=SESSION,
    broker_heartbeat_interval=float(os.environ.get("HEARTBEAT", "1")),
    broker_rebalance_timeout=float(os.environ.get("REBALANCE", str(max(SESSION, 10)))),
    broker_request_timeout=max(30.0, SESSION + 5),
    broker_commit_interval=float(os.environ.get("COMMIT_INTERVAL", "1")),
    stream_wait_empty=os.environ.get("WAIT_EMPTY", "0") == "1",
    web_bind="127.0.0.1",
    web_port=int(os.environ.get("WEB_PORT", "16066")),
    web_host="127.0.0.1",
    web_enabled=os.environ.get("WEB_ENABLED", "1") == "1",
)

in_topic = app.topic(IN_TOPIC, key_serializer="raw", value_serializer="raw", partitions=4)
out_topic = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw", partitions=4)
counts = app.Table(
    "counts", default=None, partitions=4, key_type=bytes, value_type=bytes  # 0.15.3: Table has no *_serializer kwargs; bytes type => "raw"
)

log = logging.getLogger("probe")

if os.environ.get("PROM") == "1":
    from prometheus_client import CollectorRegistry
    from faust.sensors.prometheus import setup_prometheus_sensors
    PROM_REGISTRY = CollectorRegistry()
    setup_prometheus_sensors(app, pattern="/metrics", registry=PROM_REGISTRY, name_prefix="probe")
_state = {"n": 0, "first": None, "last": None}
_trace = open(os.environ["TRACE"], "a", buffering=1) if os.environ.get("TRACE") else None


@app.agent(in_topic)
async def process(stream):
    async for event in stream.events():
        if _state["first"] is None:
            _state["first"] = time.time()
            log.warning("PROBE first event %.3fs after launch (partition %s offset %s)",
                        _state["first"] - T0, event.message.partition, event.message.offset)
        key = event.key
        if _trace:
            _trace.write(f"{time.time():.3f} p{event.message.partition} o{event.message.offset} {event.value.decode()}\n")
        prev = counts.get(key)
        n = int(prev) + 1 if prev is not None else 1
        counts[key] = str(n).encode()
        await out_topic.send(key=key, value=event.value + b":" + str(n).encode())
        _state["n"] += 1
        _state["last"] = time.time()
        if SLOW:
            await asyncio.sleep(SLOW)


@app.timer(2.0)
async def report():
    if _state["first"]:
        el = (_state["last"] or time.time()) - _state["first"]
        log.warning("PROBE processed=%d table_keys=%d elapsed=%.2fs rate=%.0f/s",
                    _state["n"], len(counts), el, _state["n"] / el if el else 0)


@app.task
async def on_started():
    log.warning("PROBE app task started %.3fs after launch", time.time() - T0)


@app.page("/probe/count/{key}/")
@app.table_route(table=counts, match_info="key")
async def get_count(web, request, key):
    v = counts.get(key.encode())
    return web.json({"key": key, "count": int(v) if v is not None else None,
                     "served_by": str(app.conf.canonical_url)})


@app.page("/probe/local/{key}/")
async def get_local(web, request, key):
    v = counts.get(key.encode())
    return web.json({"key": key, "local_count": int(v) if v is not None else None,
                     "served_by": str(app.conf.canonical_url)})


@app.page("/probe/state/")
async def state(web, request):
    return web.json({"processed": _state["n"], "table_keys": len(counts)})


@app.page("/probe/assign/")
async def assign(web, request):
    a = app.consumer.assignment() if app.consumer else set()
    return web.json({"assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in a),
                     "canonical_url": str(app.conf.canonical_url)})


if __name__ == "__main__":
    if os.environ.get("COMMIT_DEBUG") == "1":
        import commit_debug
        commit_debug.install()
    if os.environ.get("HW_FIX") == "1":
        import tansu_fix
        tansu_fix.install()
    app.main()
