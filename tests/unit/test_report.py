"""`funnel-processor report`: figures from real engine outputs, checked against the SPEC by hand."""

from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import replay, touchpoint

from processor.cli import report
from processor.config.definitions import load_funnels
from processor.funnel.timefmt import format_time, parse_time
from processor.tools import reporttext
from processor.tools.funnelstats import DUPLICATE, SKIPPED, BadRecord, FunnelStats, plan

DAY = 86_400
START = parse_time("2024-03-01T00:00:00Z")
_ids = itertools.count(1)


def at(days: float) -> str:
    return format_time(START + round(days * DAY * 1_000_000))


def touch(contact: str, kind: str, days: float) -> dict[str, Any]:
    return touchpoint(kind, contact, at=at(days), event_id=f"ev-{next(_ids)}")


def outputs(funnels: list[str], touches: list[dict[str, Any]], until_days: float | None = None) -> list[dict[str, Any]]:
    """What the engine emits for these touchpoints, as the JSON records a consumer reads."""
    return replay(funnels, touches, until=None if until_days is None else parse_time(at(until_days))).outputs


def stats_of(records: list[dict[str, Any]]) -> FunnelStats:
    stats = FunnelStats()
    for record in records:
        stats.add(record)
    return stats


def b2b_journeys() -> list[dict[str, Any]]:
    """Five contacts through b2b-sales, replayed until day 40 (suspect stalls after 30d)."""
    return outputs(
        ["b2b-sales"],
        [
            touch("a", "ad_click", 0),
            touch("b", "page_view", 0),
            touch("d", "ad_impression", 0),
            touch("e", "content_view", 0),
            touch("b", "demo_requested", 1),  # suspect -> prospect, skipping lead; 1d in suspect
            touch("c", "newsletter_signup", 1.5),  # enters at lead
            touch("a", "form_submitted", 2),  # suspect -> lead after 2d
            touch("c", "unsubscribed", 2),  # lost in lead
            touch("b", "deal_lost", 3),  # lost in prospect
            touch("c", "quote_requested", 4),  # reactivated: lead -> prospect after 2.5d
            touch("a", "meeting_held", 5),  # lead -> prospect after 3d
            touch("a", "purchase", 9),  # prospect -> customer after 4d
        ],
        until_days=40,  # d and e stall in suspect (deadline day 30); nobody else is due
    )


def rows(stats: FunnelStats, funnel: str = "b2b-sales") -> dict[str, Any]:
    stages = load_funnels([funnel])[0].stages
    return {row.stage: row for row in stats.table(funnel, stages).stages}


def write(tmp_path: Path, lines: list[bytes], name: str = "outputs.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def dumps(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def run_report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="funnel-processor")
    report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_stage_figures_follow_the_spec() -> None:
    stats = stats_of(b2b_journeys())
    table = stats.table("b2b-sales", load_funnels(["b2b-sales"])[0].stages)
    got = rows(stats)
    assert table.entries == 5  # a, b, d, e at suspect; c at lead
    expected = {  # stage: (entered, converted, stalled, lost, median days, reached)
        "suspect": (4, 2, 2, 0, 1.5, 5),  # out: b after 1d, a after 2d
        "lead": (2, 2, 0, 1, 2.75, 3),  # out: c after 2.5d, a after 3d; b skipped it but passed it
        "prospect": (3, 1, 0, 1, 4.0, 3),
        "customer": (1, 0, 0, 0, None, 1),
        "loyal_customer": (0, 0, 0, 0, None, 0),
    }
    for stage, (entered, converted, stalled, lost, days, reached) in expected.items():
        row = got[stage]
        assert (row.entered, row.converted, row.stalled, row.lost, row.reached) == (
            entered,
            converted,
            stalled,
            lost,
            reached,
        ), stage
        assert row.median_time_s == (None if days is None else days * DAY), stage
    assert got["suspect"].converted_rate == 0.5
    assert got["prospect"].converted_rate == pytest.approx(1 / 3)
    assert got["customer"].converted_rate == 0.0
    assert got["loyal_customer"].converted_rate is None  # nobody entered (and nothing lies beyond it)
    assert got["lead"].reach_rate == pytest.approx(3 / 5)


def test_duplicated_records_change_no_figure() -> None:
    records = b2b_journeys()
    once = stats_of(records)
    twice = stats_of(records + records[::-1] + records[:3])
    assert rows(twice) == rows(once)
    assert twice.counts[DUPLICATE] == len(records) + 3


def test_planning_rounds_up_in_exact_arithmetic() -> None:
    # 10 contacts enter quote-to-deal, 7 reach briefing: 21 / 0.7 is 30.000000000000004 in floats.
    touches = [touch(f"c{i}", "quote_requested", 0) for i in range(10)]
    touches += [touch(f"c{i}", "briefing_held", 1) for i in range(7)]
    table = stats_of(outputs(["quote-to-deal"], touches)).table("quote-to-deal", ["request", "briefing"])
    assert plan(table, 21, "briefing").entries_needed == 30
    assert plan(table, 4, "briefing").entries_needed == 6  # 4 * 10 / 7 = 5.71 -> 6
    assert plan(table, 4, "briefing").reach_rate == pytest.approx(0.7)
    nobody = plan(table, 4, "proposal")
    assert (nobody.entries_needed, nobody.reach_rate) == (None, None)


def test_planning_line_and_its_zero_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, dumps(b2b_journeys()))
    code, out, _ = run_report(capsys, "--input", path, "--stage", "prospect", "--target", "10")
    assert code == 0
    # reached prospect: a, b, c of 5 entries -> 60.0%; 10 / 0.6 = 16.67 -> 17
    assert "To get 10 at stage prospect, you need about 17 entries at the top at current rates (60.0% " in out
    _, out, _ = run_report(capsys, "--input", path)  # default: 100 at the last stage, which nobody reached
    assert "nobody has reached loyal_customer yet" in out
    assert "you need about" not in out


def test_json_output_holds_the_figures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, dumps(b2b_journeys()))
    code, out, _ = run_report(capsys, "--input", path, "--format", "json", "--stage", "customer", "--target", "7")
    assert code == 0
    doc = json.loads(out)
    [funnel] = doc["funnels"]  # by default only funnels with records are shown
    assert funnel["funnel"] == "b2b-sales" and funnel["stage_order"] == "definition"
    assert funnel["entries"] == 5
    assert [s["stage"] for s in funnel["stages"]] == ["suspect", "lead", "prospect", "customer", "loyal_customer"]
    lead = funnel["stages"][1]
    assert (lead["entered"], lead["converted"], lead["lost"], lead["reached"]) == (2, 2, 1, 3)
    assert funnel["planning"] == {
        "target": 7,
        "stage": "customer",
        "stage_in_funnel": True,
        "reach_rate": 0.2,
        "entries_needed": 35,  # one of five entries reached customer
    }
    assert doc["records"]["transitions"] == 10 and doc["records"]["dropoffs"] == 4


def test_text_table_is_aligned_with_thousands_separators(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    touches = [touch(f"c{i}", "quote_requested", 0) for i in range(1234)]
    touches += [touch(f"c{i}", "briefing_held", 0.5) for i in range(617)]  # 12h in request
    path = write(tmp_path, dumps(outputs(["quote-to-deal"], touches)))
    code, out, _ = run_report(capsys, "--input", path, "--funnel", "quote-to-deal")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "quote-to-deal: 1,234 entries"
    header, request, briefing = lines[1], lines[2], lines[3]
    assert request.split() == ["request", "1,234", "617", "50.0%", "0", "0", "12.0h", "1,234", "100.0%"]
    assert briefing.split()[:2] == ["briefing", "617"]
    # right-aligned numeric columns: each header ends where its column's cells end
    for title in ("entered", "converted", "conv %", "median time*", "reach %"):
        end = header.index(title) + len(title)
        assert request[end - 1] != " " and request[end : end + 1] in ("", " "), title
        assert briefing[end - 1] != " ", title


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (45, "45s"), (720, "12m"), (5 * 3600, "5.0h"), (3.2 * DAY, "3.2d"), (3599.9, "1.0h")],
)
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert reporttext.duration(seconds) == text


def test_skipped_and_malformed_lines_are_counted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = b2b_journeys()
    bad_record = {**records[0], "id": "b2b-sales:99:zz"}
    del bad_record["to_stage"]
    lines = [
        *dumps(records[:4]),
        b"",
        b"   ",
        b'{"kind": "deadletter", "reason": "invalid_json", "payload": "{"}',
        b"{not json",
        orjson.dumps(bad_record),
        b"[1, 2]",
    ]
    path = write(tmp_path, lines + dumps(records[4:]))
    code, out, err = run_report(capsys, "--input", path, "--format", "json")
    assert code == 0
    counts = json.loads(out)["records"]
    assert counts["skipped"] == 4 and counts["skipped_blank"] == 2  # two blank, a dead letter, an array
    assert (counts["skipped_dead_letters"], counts["skipped_other_json"], counts["skipped_touchpoints"]) == (1, 1, 0)
    assert counts["malformed"] == 2
    assert counts["transitions"] + counts["dropoffs"] == len(records)
    assert f"{path}:8: not valid JSON" in err and f"{path}:9: " in err and "'to_stage'" in err
    _, text, _ = run_report(capsys, "--input", path)
    assert (
        "Skipped 4 lines that are not transition or drop-off records: 2 blank lines, 1 dead letter, "
        "1 other JSON value." in text
    )
    assert "Ignored 2 malformed lines" in text


def test_inputs_are_deduplicated_across_files_and_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = b2b_journeys()
    first = write(tmp_path, dumps(records[:6]), "first.jsonl")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n".join(dumps(records)))))
    _, out, _ = run_report(capsys, "--input", first, "--input", "-", "--format", "json")
    doc = json.loads(out)
    assert doc["records"]["duplicates"] == 6
    assert doc["funnels"][0]["entries"] == 5


def test_funnels_without_a_definition_get_an_inferred_stage_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = {
        "name": "trial",
        "stages": ["signup", "activated", "paid"],
        "rules": [
            {"stage": "signup", "type": "form_submitted"},
            {"stage": "activated", "type": "product_view"},
            {"stage": "paid", "type": "purchase"},
        ],
        "terminal": ["paid"],
    }
    funnel_file = tmp_path / "trial.json"
    funnel_file.write_bytes(orjson.dumps(definition))
    touches = [touch("x", "purchase", 0), touch("y", "form_submitted", 1), touch("y", "product_view", 2)]
    touches += [touch("z", "form_submitted", 1), touch("z", "purchase", 3)]  # skips activated
    trial = outputs([str(funnel_file)], touches)
    path = write(tmp_path, dumps(trial + b2b_journeys()))

    _, out, _ = run_report(capsys, "--input", path, "--format", "json")
    shown = {f["funnel"]: f for f in json.loads(out)["funnels"]}
    assert list(shown) == ["b2b-sales", "trial"]  # presets first, then funnels seen in the records
    assert shown["trial"]["stage_order"] == "inferred"
    assert [s["stage"] for s in shown["trial"]["stages"]] == ["signup", "activated", "paid"]
    assert [s["reached"] for s in shown["trial"]["stages"]] == [3, 3, 2]

    _, out, _ = run_report(capsys, "--input", path, "--funnel", "aida", "--funnel-file", str(funnel_file))
    assert out.startswith("aida: 0 entries\n")  # selected funnels are shown even without records
    assert "trial: 3 entries" in out and "no definition loaded" not in out
    assert "Left out records of funnels not selected: b2b-sales (14)." in out


def test_a_stage_the_funnel_lacks_is_said_plainly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, dumps(b2b_journeys()))
    code, out, _ = run_report(capsys, "--input", path, "--stage", "won")  # a stage of quote-to-deal, a preset
    assert code == 0
    assert "Planning: this funnel has no stage 'won'." in out


def test_a_stage_no_funnel_has_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, dumps(b2b_journeys()))
    code, out, err = run_report(capsys, "--input", path, "--stage", "custmer")
    assert (code, out) == (2, "")
    assert err == (
        "funnel-processor report: --stage 'custmer' is not a stage of the funnels reported; did you mean 'customer'?\n"
    )
    code, out, err = run_report(capsys, "--input", path, "--funnel", "quote-to-deal", "--stage", "xyz")
    assert (code, out) == (2, "")
    assert err.endswith(
        "--stage 'xyz' is not a stage of the funnels reported; the stages are request, briefing, proposal, won\n"
    )


def test_stages_inferred_from_records_count_for_stage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def renamed(record: dict[str, Any]) -> dict[str, Any]:  # funnel "mine", no definition loaded; stage "sql"
        out = {**record, "funnel": "mine", "id": record["id"].replace("b2b-sales", "mine")}
        for key in ("from_stage", "to_stage", "stage"):
            if out.get(key) == "prospect":
                out[key] = "sql"
        if "skipped" in out:
            out["skipped"] = ["sql" if s == "prospect" else s for s in out["skipped"]]
        return out

    path = write(tmp_path, dumps([renamed(r) for r in b2b_journeys()]))
    code, out, _ = run_report(capsys, "--input", path, "--stage", "sql", "--target", "3")
    assert code == 0 and "To get 3 at stage sql, you need about 5 entries" in out


def test_touchpoints_given_instead_of_outputs_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    touches = [touch(f"c{i}", "ad_click", 0) for i in range(5)]
    path = write(tmp_path, [*dumps(touches), b"", b'{"kind": "deadletter", "reason": "invalid_json"}'])
    code, out, err = run_report(capsys, "--input", path)
    assert (code, out) == (2, "")
    assert err.startswith(
        "funnel-processor report: read no transition or drop-off records; the input held 5 touchpoints, "
        "1 dead letter. `report` reads the outputs of replay or of the worker"
    )
    assert "funnel-processor replay --funnel NAME --input FILE > outputs.jsonl" in err


def test_garbage_alone_is_refused_but_an_empty_input_is_not(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_report(capsys, "--input", write(tmp_path, [b"[1]", b"{oops"]))
    assert (code, out) == (2, "")
    assert "read no transition or drop-off records; the input held 1 other JSON value, 1 malformed line" in err
    code, out, err = run_report(capsys, "--input", write(tmp_path, [b"", b" "], "blank.jsonl"))
    assert (code, err) == (0, "")
    assert out.startswith("No transition or drop-off records read.\n")


def test_touchpoints_mixed_with_outputs_are_counted_and_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    touches = [touch(f"c{i}", "ad_click", 0) for i in range(3)]
    path = write(tmp_path, dumps(touches) + dumps(b2b_journeys()))
    code, out, err = run_report(capsys, "--input", path)
    assert code == 0
    assert err == "funnel-processor report: skipped 3 lines (not transition or drop-off records): 3 touchpoints\n"
    assert "Skipped 3 lines that are not transition or drop-off records: 3 touchpoints." in out
    code, out, _ = run_report(capsys, "--input", path, "--format", "json")
    assert json.loads(out)["records"]["skipped_touchpoints"] == 3


def test_the_legend_says_why_dropped_and_converted_can_exceed_entered(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, dumps(b2b_journeys()))
    _, out, _ = run_report(capsys, "--input", path, "--format", "json")
    lead = json.loads(out)["funnels"][0]["stages"][1]
    # c was lost in lead and then moved on (a reactivation): it counts as lost and as converted
    assert lead["converted"] + lead["stalled"] + lead["lost"] > lead["entered"]
    _, text, _ = run_report(capsys, "--input", path)
    assert (
        "(a reactivation) counts as dropped and as\n  converted, so converted + stalled + lost can exceed entered."
        in text
    )


def test_bad_records_and_arguments_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stats = FunnelStats()
    assert stats.add({"kind": "deadletter"}) == SKIPPED
    with pytest.raises(BadRecord):
        stats.add({"kind": "dropoff", "id": "f:1:c", "funnel": "f", "stage": "s", "reason": "bored"})
    with pytest.raises(SystemExit):
        run_report(capsys, "--target", "0")
    code, _, err = run_report(capsys, "--input", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err


def test_a_user_funnel_needs_its_file_for_stages_nobody_reached(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = {
        "name": "trial",
        "stages": ["signup", "activated", "paid"],
        "rules": [
            {"stage": "signup", "type": "form_submitted"},
            {"stage": "activated", "type": "product_view"},
            {"stage": "paid", "type": "purchase"},
        ],
    }
    funnel_file = tmp_path / "trial.json"
    funnel_file.write_bytes(orjson.dumps(definition))
    touches = [touch("x", "form_submitted", 0), touch("x", "product_view", 1), touch("y", "form_submitted", 1)]
    path = write(tmp_path, dumps(outputs([str(funnel_file)], touches)))
    _, out, _ = run_report(capsys, "--input", path, "--format", "json")
    [inferred] = json.loads(out)["funnels"]
    assert [s["stage"] for s in inferred["stages"]] == ["signup", "activated"]  # nobody paid: no such row
    _, out, _ = run_report(capsys, "--input", path, "--funnel-file", str(funnel_file), "--format", "json")
    [defined] = json.loads(out)["funnels"]
    assert defined["stage_order"] == "definition"
    assert [s["stage"] for s in defined["stages"]] == ["signup", "activated", "paid"]
