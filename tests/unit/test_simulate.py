"""`funnel-processor simulate`: seeded, ordered, valid touchpoints that do what was asked.

Behaviour is checked by replaying the generated file through the core engine: the
funnel's own rules decide what each touchpoint did.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import DAY, replay

from processor.cli import simulate
from processor.config.definitions import load_preset
from processor.config.schemas import validator
from processor.funnel.outputs import DroppedOff, Output, StageTransitioned
from processor.funnel.timefmt import format_time, parse_time
from processor.funnel.touchpoint import decode, from_dict
from processor.tools.simgen import Config, generate, plan_for

START = "2026-01-01T00:00:00Z"


def parse(*argv: str) -> argparse.Namespace:
    """The command's arguments as the CLI parses them (through simulate.register)."""
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulate", *argv])


def run(tmp_path: Path, *argv: str) -> bytes:
    """Run the command and return the file it wrote."""
    out = tmp_path / f"sim-{len(list(tmp_path.iterdir()))}.jsonl"
    args = parse("--output", str(out), *argv)
    assert args.run(args) == 0
    return out.read_bytes()


def docs(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def outputs_of(funnel_specs: list[str], data: bytes) -> list[Output]:
    """The engine's outputs for the file, every stall fired (400 days after the last touchpoint)."""
    funnels = [Path(s) if s.endswith(".json") else s for s in funnel_specs]
    run = replay(funnels, data.splitlines(), flush=400 * DAY, check=False)
    assert run.engine.clock is not None and run.letters == []
    return run.produced


def transitions(outputs: list[Output]) -> list[StageTransitioned]:
    return [o for o in outputs if o["kind"] == "transition"]


def dropoffs(outputs: list[Output], reason: str) -> list[DroppedOff]:
    return [o for o in outputs if o["kind"] == "dropoff" and o["reason"] == reason]


@pytest.mark.parametrize("when", [("--start", START), ("--end", "2026-06-30T12:00:00Z")])
def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path, when: tuple[str, str]) -> None:
    argv = ("--funnel", "b2b-sales", "--funnel", "aida", "--contacts", "300", *when)
    first = run(tmp_path, *argv, "--seed", "11")
    assert first == run(tmp_path, *argv, "--seed", "11")
    assert first != run(tmp_path, *argv, "--seed", "12")


def today_utc() -> int:
    """00:00 UTC of the current day, in µs."""
    day = 86_400_000_000
    return time.time_ns() // 1000 // day * day


def test_by_default_the_last_touchpoint_falls_at_midnight_utc_today(tmp_path: Path) -> None:
    """So that every simulated time lies in the past (a worker refuses the future), and a file made
    today is the same bytes all day: it is the file made with --end at today's midnight."""
    argv = ("--funnel", "b2b-sales", "--funnel", "customer-journey", "--contacts", "300", "--seed", "5")
    before = today_utc()
    data = run(tmp_path, *argv)
    after = today_utc()
    times = [parse_time(d["occurred_at"]) for d in docs(data)]
    assert times[-1] in (before, after) and times[-1] <= time.time_ns() // 1000
    assert data == run(tmp_path, *argv, "--end", format_time(times[-1]))
    assert times[0] < times[-1] - 30 * 86_400_000_000  # journeys of months, all before today


def test_end_shifts_the_same_walks_so_that_the_last_touchpoint_falls_on_it(tmp_path: Path) -> None:
    argv = ("--funnel", "aida", "--contacts", "200", "--seed", "9")
    started = docs(run(tmp_path, *argv, "--start", START))
    ended = docs(run(tmp_path, *argv, "--end", "2025-02-01T00:00:00.5Z"))
    assert ended[-1]["occurred_at"] == "2025-02-01T00:00:00.500000Z"
    shift = parse_time(ended[-1]["occurred_at"]) - parse_time(started[-1]["occurred_at"])
    for a, b in zip(started, ended, strict=True):
        assert parse_time(b["occurred_at"]) - parse_time(a["occurred_at"]) == shift
        assert {**a, "occurred_at": ""} == {**b, "occurred_at": ""}


def test_start_and_end_cannot_both_be_given() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("--funnel", "aida", "--contacts", "5", "--seed", "1", "--start", START, "--end", START)
    assert exit_info.value.code == 2


def test_every_line_is_a_valid_touchpoint_and_time_never_goes_back(tmp_path: Path) -> None:
    argv = ("--funnel", "customer-journey", "--contacts", "400", "--seed", "3", "--days", "3", "--start", START)
    data = run(tmp_path, *argv)
    tps = [decode(line) for line in data.splitlines()]  # raises Invalid on a bad line
    schema = validator("touchpoint")
    assert all(schema.is_valid(doc) for doc in docs(data))
    assert len(tps) > 400
    assert all(a.at <= b.at for a, b in pairwise(tps))
    start = parse_time(START)
    assert start <= tps[0].at < start + 3 * 86_400_000_000  # the first contact enters in the window
    assert {tp.contact_id for tp in tps} <= {f"c-{n:06d}" for n in range(1, 401)}
    assert all(tp.event_id.startswith("e-3-") for tp in tps)
    assert {tp.channel for tp in tps} >= {"paid_search", "email", "organic", "referral", "social", "direct", None}
    assert any(tp.campaign for tp in tps) and any(tp.campaign is None for tp in tps)


def test_the_generator_is_pure_and_takes_its_start_time(tmp_path: Path) -> None:
    plan = plan_for(load_preset("aida"), {}, {})
    start = parse_time("2030-06-01T12:00:00Z")
    config = Config(seed=5, contacts=50, days=0.5)
    produced = list(generate([plan], config, start))
    assert produced == list(generate([plan], config, start))
    assert all(from_dict(d).at >= start for d in produced)
    assert min(from_dict(d).at for d in produced) < start + 43_200_000_000


def test_duplicates_are_exact_copies_at_the_requested_rate(tmp_path: Path) -> None:
    data = run(tmp_path, "--funnel", "aida", "--contacts", "2000", "--seed", "8", "--duplicate-rate", "0.1")
    first_line: dict[str, bytes] = {}
    copies = 0
    for line in data.splitlines():
        event_id = orjson.loads(line)["event_id"]
        if event_id in first_line:
            assert line == first_line[event_id]
            copies += 1
        else:
            first_line[event_id] = line
    # ~5,000 originals: the rate's standard error is ~0.004, the tolerance 0.02.
    assert copies / len(first_line) == pytest.approx(0.1, abs=0.02)
    none = run(tmp_path, "--funnel", "aida", "--contacts", "500", "--seed", "8", "--duplicate-rate", "0")
    ids = [d["event_id"] for d in docs(none)]
    assert len(ids) == len(set(ids))


def test_conversion_follows_the_requested_probabilities(tmp_path: Path) -> None:
    argv = ["--funnel", "aida", "--contacts", "5000", "--seed", "21"]
    data = run(tmp_path, *argv, "--conversion", "awareness=0.5", "--conversion", "interest=0.2")
    outputs = outputs_of(["aida"], data)
    entered = Counter(t["to_stage"] for t in transitions(outputs))
    left = Counter(t["from_stage"] for t in transitions(outputs) if t["from_stage"] is not None)
    assert entered["awareness"] == 5000  # every contact enters at the top
    # Binomial standard errors: ~0.007 at awareness (n=5000), ~0.008 at interest (n~2500).
    assert left["awareness"] / entered["awareness"] == pytest.approx(0.5, abs=0.03)
    assert left["interest"] / entered["interest"] == pytest.approx(0.2, abs=0.03)
    # Default delays are 40% of stall_after on average: some contacts stall, then come back.
    assert any(t["reactivated"] for t in transitions(outputs))


def test_channel_conversion_scales_the_probabilities_of_contacts_by_their_first_channel(tmp_path: Path) -> None:
    argv = ["--funnel", "aida", "--contacts", "6000", "--seed", "21", "--start", START]
    factors = ["--channel-conversion", "social=1.6", "--channel-conversion", "paid_search=0.4"]
    outputs = outputs_of(["aida"], run(tmp_path, *argv, *factors, "--conversion", "awareness=0.5"))
    moves = transitions(outputs)
    first = {t["contact_id"]: t["first_touch"]["channel"] for t in moves}
    entered = Counter(first[t["contact_id"]] for t in moves if t["to_stage"] == "awareness")
    left = Counter(first[t["contact_id"]] for t in moves if t["from_stage"] == "awareness")
    rates = {channel: left[channel] / entered[channel] for channel in entered}
    # Binomial standard errors under 0.02 for these channels' ~1,000-3,000 entrants.
    assert rates["social"] == pytest.approx(0.8, abs=0.05)
    assert rates["paid_search"] == pytest.approx(0.2, abs=0.05)
    assert rates[None] == pytest.approx(0.5, abs=0.08)  # no first channel: no factor


def test_channel_conversion_keeps_the_draws_so_factors_of_one_change_nothing(tmp_path: Path) -> None:
    argv = ["--funnel", "b2b-sales", "--contacts", "300", "--seed", "5", "--start", START]
    plain = run(tmp_path, *argv)
    assert run(tmp_path, *argv, "--channel-conversion", "email=1", "--channel-conversion", "social=1.0") == plain
    scaled = run(tmp_path, *argv, "--channel-conversion", "email=0.2")
    assert scaled != plain and run(tmp_path, *argv, "--channel-conversion", "email=0.2") == scaled


def test_a_channel_named_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--funnel", "aida", "--contacts", "5", "--seed", "1", *["--channel-conversion", "email=2"] * 2)
    assert args.run(args) == 2
    assert "--channel-conversion names a channel twice" in capsys.readouterr().err


def test_lost_touchpoints_lose_contacts(tmp_path: Path) -> None:
    argv = ["--funnel", "aida", "--contacts", "300", "--seed", "4", "--conversion", "awareness=0"]
    data = run(tmp_path, *argv, "--lost-rate", "1", "--delay", "awareness=1h")
    assert any(d["type"] == "unsubscribed" for d in docs(data))
    outputs = outputs_of(["aida"], data)
    lost = dropoffs(outputs, "lost")
    assert len({d["contact_id"] for d in lost}) == 300  # a one-hour mean never reaches the 14-day stall
    assert {d["stage"] for d in lost} == {"awareness"}
    assert not dropoffs(outputs_of(["aida"], run(tmp_path, *argv, "--lost-rate", "0")), "lost")


def test_nth_rules_are_met(tmp_path: Path) -> None:
    conversions = [f"--conversion={s}=1" for s in ("suspect", "lead", "prospect", "customer")]
    argv = ["--funnel", "b2b-sales", "--contacts", "200", "--seed", "6", "--skip-rate", "0"]
    moves = transitions(outputs_of(["b2b-sales"], run(tmp_path, *argv, *conversions)))
    assert Counter(t["to_stage"] for t in moves)["loyal_customer"] == 200  # purchase nth=2


def test_noise_never_moves_anyone(tmp_path: Path) -> None:
    # In customer-journey a second purchase leads to advocacy: noise must not send one.
    conversions = [f"--conversion={s}=1" for s in ("awareness", "consideration", "purchase")]
    argv = ["--funnel", "customer-journey", "--contacts", "200", "--seed", "6", "--skip-rate", "0"]
    data = run(tmp_path, *argv, *conversions, "--conversion", "service=0", "--noise-rate", "0.8")
    stages = load_preset("customer-journey").stages
    moves = transitions(outputs_of(["customer-journey"], data))
    assert Counter(t["to_stage"] for t in moves) == dict.fromkeys(stages[:-1], 200)
    for t in moves:  # with no skips asked for, every move is exactly one stage
        assert t["skipped"] == []
        assert t["from_stage"] is None or stages.index(t["to_stage"]) == stages.index(t["from_stage"]) + 1
    assert len(data.splitlines()) > 2 * 200 * len(stages)  # there was plenty of noise


def test_skips_fill_skipped_lists(tmp_path: Path) -> None:
    argv = ["--funnel", "aida", "--contacts", "200", "--seed", "2", "--skip-rate", "1"]
    moves = transitions(outputs_of(["aida"], run(tmp_path, *argv, "--conversion", "awareness=1")))
    assert Counter(tuple(t["skipped"]) for t in moves if t["from_stage"] == "awareness") == {("interest",): 200}


def test_channel_and_property_conditions_are_satisfied(tmp_path: Path) -> None:
    definition = {
        "name": "picky",
        "stages": ["seen", "qualified", "won"],
        "rules": [
            {"stage": "seen", "type": "page_view", "channel": ["organic", "referral"]},
            {
                "stage": "qualified",
                "type": "form_submitted",
                "channel": "paid_search",
                "properties": {
                    "score": {"gte": 50, "lt": 60},
                    "plan": {"in": ["pro", "team"]},
                    "region": {"ne": "eu", "exists": True},
                    "tier": {"not_in": ["free"]},
                    "trial": {"exists": False},
                    "consent": True,
                },
            },
            {"stage": "won", "type": "purchase", "nth": 3, "properties": {"amount": {"gt": 1000}}},
        ],
        "lost": [{"type": "unsubscribed", "properties": {"reason": "price"}}],
        "stall_after": {"seen": "10d", "qualified": "10d"},
    }
    path = tmp_path / "picky.json"
    path.write_text(json.dumps(definition))
    argv = ["--funnel-file", str(path), "--contacts", "100", "--seed", "9"]
    won = outputs_of([str(path)], run(tmp_path, *argv, "--conversion", "seen=1", "--conversion", "qualified=1"))
    assert Counter(t["to_stage"] for t in transitions(won))["won"] == 100
    lost = outputs_of(
        [str(path)], run(tmp_path, *argv, "--conversion", "seen=0", "--lost-rate", "1", "--delay", "seen=1h")
    )
    assert len(dropoffs(lost, "lost")) == 100


def test_several_funnels_share_one_file_and_settings_can_name_a_funnel(tmp_path: Path) -> None:
    argv = ["--funnel", "aida", "--funnel", "customer-journey", "--contacts", "600", "--seed", "5"]
    data = run(tmp_path, *argv, "--conversion", "aida:awareness=0", "--conversion", "customer-journey:awareness=1")
    moves = transitions(outputs_of(["aida", "customer-journey"], data))
    aida = [t for t in moves if t["funnel"] == "aida"]
    journey = [t for t in moves if t["funnel"] == "customer-journey"]
    # Both funnels' awareness types overlap, so every contact enters customer-journey; only
    # its own walkers (about half, chosen at random) move on there, all of them.
    assert len({t["contact_id"] for t in journey if t["from_stage"] is None}) == 600
    walkers = {t["contact_id"] for t in journey if t["from_stage"] == "awareness"}
    assert 240 < len(walkers) < 360
    # aida walkers never leave awareness: whoever moves forward in aida walks customer-journey.
    assert {t["contact_id"] for t in aida if t["from_stage"] is not None} <= walkers


def test_touchpoints_gives_exactly_n_lines_in_order(tmp_path: Path) -> None:
    data = run(tmp_path, "--funnel", "quote-to-deal", "--touchpoints", "1234", "--seed", "1")
    times = [parse_time(d["occurred_at"]) for d in docs(data)]
    assert len(times) == 1234
    assert times == sorted(times)


def test_stdout_and_summary(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = parse("--funnel", "aida", "--contacts", "20", "--seed", "1", "--duplicate-rate", "0")
    assert args.run(args) == 0
    out, err = capsysbinary.readouterr()
    lines = out.splitlines()
    assert lines and all(decode(line) for line in lines)
    assert f"20 contacts, {len(lines)} touchpoints (0 duplicates)".encode() in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--conversion", "nowhere=0.5"], "no simulated funnel has a stage 'nowhere'"),
        (["--conversion", "action=0.5"], "is the last of funnel 'aida'"),
        (["--delay", "b2b-sales:lead=1d"], "no funnel 'b2b-sales' is being simulated"),
    ],
)
def test_settings_naming_what_is_not_there_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = parse("--funnel", "aida", "--contacts", "5", "--seed", "1", *argv)
    assert args.run(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad",
    [
        ["--conversion", "awareness=1.5"],
        ["--lost-rate", "-0.1"],
        ["--delay", "x=soon"],
        ["--channel-conversion", "email=-1"],
        ["--channel-conversion", "email"],
        ["--channel-conversion", "=2"],
        ["--channel-conversion", "email=inf"],
    ],
)
def test_malformed_values_are_usage_errors(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("--funnel", "aida", "--contacts", "5", "--seed", "1", *bad)
    assert exit_info.value.code == 2


def test_a_funnel_no_touchpoint_can_enter_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    never = {
        "name": "never",
        "stages": ["a", "b"],
        "rules": [{"stage": "a", "type": "x", "properties": {"k": {"in": []}}}, {"stage": "b", "type": "y"}],
    }
    path = tmp_path / "never.json"
    path.write_text(json.dumps(never))
    args = parse("--funnel-file", str(path), "--touchpoints", "10", "--seed", "1", "--output", str(tmp_path / "o"))
    assert args.run(args) == 2
    assert "no touchpoint can enter" in capsys.readouterr().err


def test_a_contact_prefix_gives_new_contacts_for_the_same_seed(tmp_path: Path) -> None:
    plain = {d["contact_id"] for d in docs(run(tmp_path, "--funnel", "aida", "--contacts", "20", "--seed", "4"))}
    other = {
        d["contact_id"]
        for d in docs(run(tmp_path, "--funnel", "aida", "--contacts", "20", "--seed", "4", "--contact-prefix", "b2-"))
    }
    assert len(plain) == len(other) == 20
    assert all(c.startswith("c-") for c in plain) and all(c.startswith("b2-") for c in other)
