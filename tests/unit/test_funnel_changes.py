"""Changing a funnel under stored journeys (issue 12): each kind of change, on the core and the codec.

The core's `plan` and `migrate` decide where a stored position goes, by stage name; the
entry layer (`Layout.read`, `Layout.summary`) applies them to entries written under an
earlier, recorded layout, and the start-up check counts stranded contacts from headers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import DAY, T0, Touchpoints, instant, micros, replay

from processor.cli import main
from processor.config.definitions import PRESET_DIR, load_document
from processor.funnel.definition import DefinitionError, Funnel
from processor.funnel.engine import Engine
from processor.funnel.migration import Recorded, Unmigratable, migrate, plan
from processor.funnel.state import ContactState, Limits
from processor.worker.state.entry import ForeignLayout, Layout, encode_entry
from processor.worker.state.migrate import count_stranded, record_document, recorded_layouts, refusal
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import JourneyStore, stored_by_partition

Doc = dict[str, Any]


def b2b(edit: Callable[[Doc], None] | None = None) -> Funnel:
    """b2b-sales as the preset defines it, changed by `edit`."""
    doc = orjson.loads((PRESET_DIR / "b2b-sales.json").read_bytes())
    if edit is not None:
        edit(doc)
    return load_document(doc, "<b2b-sales changed>")


def insert_sal(doc: Doc) -> None:
    """'sal' between lead and prospect, entered by lead_qualified (which prospect no longer takes)."""
    doc["stages"].insert(2, "sal")
    doc["rules"].insert(2, {"stage": "sal", "type": "lead_qualified"})
    doc["rules"][3]["type"].remove("lead_qualified")


def rename_lead(doc: Doc) -> None:
    doc["stages"][1] = "mql"
    doc["rules"][1]["stage"] = "mql"
    doc["stall_after"]["mql"] = doc["stall_after"].pop("lead")
    doc["renamed_from"] = {"mql": "lead"}


def drop_prospect(doc: Doc, target: str | None = "lead") -> None:
    doc["stages"].remove("prospect")
    lead_rules = doc["rules"][1]["type"]
    lead_rules += doc["rules"].pop(2)["type"]
    del doc["stall_after"]["prospect"]
    if target is not None:
        doc["removed"] = {"prospect": target}


OLD = b2b()
STREAM: list[tuple[str, str]] = [
    ("page_view", "at_suspect"),
    ("form_submitted", "at_lead"),
    ("demo_requested", "at_prospect"),
    ("purchase", "at_customer"),
    ("form_submitted", "at_lead_2"),
]


def stored_states() -> dict[str, ContactState]:
    """Contacts at suspect, lead (two), prospect and customer of b2b-sales as the preset defines it."""
    stream = Touchpoints()
    result = replay([OLD], [stream(kind, contact) for kind, contact in STREAM])
    assert isinstance(result.engine.store, dict)
    return dict(result.engine.store)


def stages_of(states: Mapping[str, ContactState], funnel: Funnel) -> dict[str, str]:
    return {c: funnel.stages[s.positions[funnel.name].stage] for c, s in states.items() if funnel.name in s.positions}


def written(states: Mapping[str, ContactState], layout: Layout) -> dict[bytes, bytes]:
    return {c.encode(): encode_entry(-1, s, layout) for c, s in states.items()}


def reader(funnels: list[Funnel], *recorded: Layout) -> Layout:
    """The layout a worker starting with `funnels` reads and writes under, given the recorded ones."""
    return Layout(funnels, plan(funnels, [Recorded(r.digest, r.shapes) for r in recorded]))


def read_all(table: Mapping[bytes, bytes], layout: Layout) -> dict[str, ContactState]:
    return {key.decode(): layout.read(raw)[1] for key, raw in table.items()}


BEFORE = {"at_suspect": "suspect", "at_lead": "lead", "at_prospect": "prospect", "at_customer": "customer"}
BEFORE |= {"at_lead_2": "lead"}


def test_a_stage_inserted_keeps_every_contact_at_its_stage_by_name() -> None:
    old_layout, new = Layout([OLD]), b2b(insert_sal)
    assert new.stages == ("suspect", "lead", "sal", "prospect", "customer", "loyal_customer")
    layout = reader([new], old_layout)
    table = written(stored_states(), old_layout)
    assert stages_of(read_all(table, layout), new) == BEFORE
    # Without the recorded layout the indexes are read against the new list: the defect of issue 12.
    misread = {key.decode(): Layout([new]).read(raw)[1] for key, raw in table.items()}
    assert stages_of(misread, new)["at_prospect"] == "sal"
    # The stage counts rebuilt from the migrated positions, from the entries' headers' layout.
    stored = stored_by_partition(table.items(), layout, lambda key: 0)[0]
    counts = StageCounts([new], layout)
    counts.rebuild(0, stored.stages)
    table_now = counts.table()["b2b-sales"]
    assert {s: n["active"] for s, n in table_now.items() if n["active"]} == {
        "suspect": 1,
        "lead": 2,
        "prospect": 1,
        "customer": 1,
    }
    assert table_now["sal"] == {"active": 0, "dropped": 0}


def test_after_an_insertion_the_journey_goes_on_through_the_new_stage_with_its_sequence() -> None:
    new = b2b(insert_sal)
    moved = plan([new], [Recorded(Layout([OLD]).digest, Layout([OLD]).shapes)]).moves[Layout([OLD]).digest]
    store = {c: migrate(s, moved) for c, s in stored_states().items()}
    stream = Touchpoints(start=T0 + timedelta(hours=1))
    after = replay([new], [stream("lead_qualified", "at_lead", event_id="later")], store=store)
    [transition] = after.outputs
    assert (transition["from_stage"], transition["to_stage"], transition["skipped"]) == ("lead", "sal", [])
    assert transition["sequence"] == 2  # the migration emitted nothing and kept the sequence


def test_a_migration_emits_nothing_and_changes_nothing_but_the_stage_index() -> None:
    new = b2b(insert_sal)
    old_layout = Layout([OLD])
    moved = plan([new], [Recorded(old_layout.digest, old_layout.shapes)]).moves[old_layout.digest]
    for contact, state in stored_states().items():
        after = migrate(state, moved)
        before_pos, after_pos = state.positions["b2b-sales"], after.positions["b2b-sales"]
        assert after_pos._replace(stage=before_pos.stage) == before_pos, contact
        assert after._replace(positions=state.positions) == state


def test_a_stage_renamed_through_renamed_from_keeps_its_contacts() -> None:
    new = b2b(rename_lead)
    layout = reader([new], Layout([OLD]))
    got = stages_of(read_all(written(stored_states(), Layout([OLD])), layout), new)
    assert got == {c: "mql" if s == "lead" else s for c, s in BEFORE.items()}


def test_a_stage_removed_with_a_target_moves_its_contacts_there() -> None:
    new = b2b(drop_prospect)
    layout = reader([new], Layout([OLD]))
    got = stages_of(read_all(written(stored_states(), Layout([OLD])), layout), new)
    assert got == {c: "lead" if s == "prospect" else s for c, s in BEFORE.items()}


def test_a_stage_removed_without_a_target_is_refused_naming_the_funnel_the_stage_and_the_count() -> None:
    new = b2b(lambda doc: drop_prospect(doc, target=None))
    old_layout = Layout([OLD])
    decided = plan([new], [Recorded(old_layout.digest, old_layout.shapes)])
    [stranded] = decided.stranded
    assert (stranded.funnel, stranded.stage) == ("b2b-sales", "prospect")
    states = stored_states()
    states["at_prospect_2"] = states["at_prospect"]
    states["at_prospect_3"] = states["at_prospect"]
    table = written(states, old_layout)
    # The latest entry of each contact counts (a changelog holds older ones too), from headers only.
    entries = [(b"at_lead", table[b"at_prospect"]), *table.items(), (b"gone", None)]
    counts = count_stranded(decided.stranded, entries)
    assert counts[stranded] == 3
    message = refusal(counts)
    assert "'b2b-sales'" in message and "'prospect'" in message and "3 stored contacts" in message
    assert '"removed"' in message and "\n" not in message
    # The core refuses to move such a position rather than guess.
    with pytest.raises(Unmigratable, match="b2b-sales"):
        migrate(states["at_prospect"], decided.moves[old_layout.digest])


def test_a_stage_removed_that_no_contact_holds_strands_nobody() -> None:
    new = b2b(lambda doc: drop_prospect(doc, target=None))
    old_layout = Layout([OLD])
    decided = plan([new], [Recorded(old_layout.digest, old_layout.shapes)])
    states = {c: s for c, s in stored_states().items() if c != "at_prospect"}
    assert not +count_stranded(decided.stranded, list(written(states, old_layout).items()))


def test_a_shortened_stall_time_fires_overdue_deadlines_once_at_their_true_deadline() -> None:
    def shorten(doc: Doc) -> None:
        doc["stall_after"]["lead"] = "7d"

    new = b2b(shorten)
    old_layout = Layout([OLD])
    layout = reader([new], old_layout)
    table = written(stored_states(), old_layout)
    store = JourneyStore(dict(table), layout)
    engine = Engine([new], store)
    stored = stored_by_partition(table.items(), layout, lambda key: 0)[0]
    engine.add_timers(stored.timers)
    lead_entered = {c: store[c].positions["b2b-sales"].entered_at for c in ("at_lead", "at_lead_2")}
    # Ten days on, past the new 7-day deadline, far from the old 30-day one: each lead contact stalls once.
    fired: list[dict[str, Any]] = [orjson.loads(orjson.dumps(o)) for o in engine.advance_to(micros(T0 + 10 * DAY))]
    assert sorted((o["contact_id"], o["stage"], o["reason"]) for o in fired) == [
        ("at_lead", "lead", "stalled"),
        ("at_lead_2", "lead", "stalled"),
    ]
    for output in fired:
        assert micros_of(output["occurred_at"]) == lead_entered[output["contact_id"]] + 7 * 86_400_000_000
    assert engine.advance_to(micros(T0 + 20 * DAY)) == []
    assert [o["contact_id"] for o in engine.advance_to(micros(T0 + 40 * DAY))] == ["at_suspect"]


def micros_of(text: str) -> int:
    return micros(instant(text))


def test_a_funnel_removed_keeps_its_positions_dormant_and_configured_again_resumes_them() -> None:
    aida = load_document(orjson.loads((PRESET_DIR / "aida.json").read_bytes()), "aida")
    both = Layout([OLD, aida])
    states = stored_states()
    table = written(states, both)
    # b2b-sales no longer configured: its positions stay, dormant, through rewrites in the new layout.
    only_aida = reader([aida], both)
    assert [s.name for s in only_aida.dormant] == ["b2b-sales"]
    rewritten = {k: encode_entry(-1, only_aida.read(raw)[1], only_aida) for k, raw in table.items()}
    stored = stored_by_partition(rewritten.items(), only_aida, lambda key: 0)[0]
    assert sum(n for (f, _, _), n in stored.stages.items() if f == "b2b-sales") == len(states)
    assert StageCounts([aida], only_aida).table().keys() == {"aida"}
    # The stated bound on an entry counts the dormant positions too.
    assert only_aida.max_entry_bytes(Limits()) > Layout([aida]).max_entry_bytes(Limits())
    assert max(map(len, rewritten.values())) <= only_aida.max_entry_bytes(Limits())
    # No deadline of a dormant funnel fires.
    engine = Engine([aida], JourneyStore(dict(rewritten), only_aida))
    engine.add_timers(stored.timers)
    assert engine.advance_to(micros(T0 + 400 * DAY)) == []
    # Configured again (with a stage inserted meanwhile): every contact where it was, by name.
    again = b2b(insert_sal)
    resumed = reader([again, aida], both, only_aida)
    assert stages_of(read_all(rewritten, resumed), again) == BEFORE
    assert read_all(rewritten, resumed)["at_lead"].positions["b2b-sales"].sequence == 1


def test_a_funnel_added_is_entered_on_the_next_matching_touchpoint() -> None:
    aida = load_document(orjson.loads((PRESET_DIR / "aida.json").read_bytes()), "aida")
    decided = plan([OLD, aida], [Recorded(Layout([OLD]).digest, Layout([OLD]).shapes)])
    assert any("'aida': new" in note for note in decided.notes)
    store = dict(stored_states())
    after = replay([OLD, aida], [Touchpoints(start=T0 + DAY)("ad_click", "at_customer", event_id="later")], store=store)
    assert [(o["funnel"], o["from_stage"], o["to_stage"]) for o in after.outputs] == [("aida", None, "awareness")]


def test_an_entry_under_definitions_recorded_after_the_worker_started_stops_it() -> None:
    old_layout = Layout([OLD])
    running = reader([OLD], old_layout)
    newer = reader([b2b(insert_sal)], old_layout)
    raw = encode_entry(-1, stored_states()["at_lead"], newer)
    with pytest.raises(ForeignLayout, match="Changing a funnel"):
        running.read(raw)
    with pytest.raises(ForeignLayout):
        running.summary(raw)


def test_the_recorded_document_round_trips_and_keeps_the_order_of_first_recording() -> None:
    old_layout = Layout([OLD])
    new_layout = reader([b2b(rename_lead)], old_layout)
    values = [record_document(old_layout, 1), record_document(new_layout, 1), record_document(old_layout, 1)]
    assert recorded_layouts(values) == [
        Recorded(old_layout.digest, old_layout.shapes),
        Recorded(new_layout.digest, new_layout.shapes),
    ]

    def unsaid(doc: Doc) -> None:
        rename_lead(doc)
        del doc["renamed_from"]

    assert new_layout.digest != Layout([b2b(unsaid)]).digest  # the rename is part of what was recorded


def test_an_unchanged_funnel_keeps_the_digest_earlier_builds_wrote() -> None:
    assert reader([OLD], Layout([OLD])).digest == Layout([OLD]).digest


@pytest.mark.parametrize(
    ("edit", "where", "problem"),
    [
        (lambda d: d.update(renamed_from={"lead": "suspect"}), "renamed_from.lead", "is a stage of this funnel"),
        (lambda d: d.update(renamed_from={"mql": "lead"}), "renamed_from.mql", "unknown stage 'mql'"),
        (lambda d: d.update(renamed_from={"lead": "a", "prospect": ["b", "a"]}), "renamed_from.prospect", "already"),
        (lambda d: d.update(removed={"lead": "suspect"}), "removed.lead", "is still a stage"),
        (lambda d: d.update(removed={"mql": "sql"}), "removed.mql", "unknown stage 'sql'"),
        (lambda d: d.update(renamed_from={"lead": "mql"}, removed={"mql": "lead"}), "removed.mql", "renamed, not"),
    ],
)
def test_renames_and_removals_are_validated(edit: Callable[[Doc], None], where: str, problem: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        b2b(edit)
    assert refused.value.where == where and problem in refused.value.problem, refused.value


def test_renamed_from_takes_several_former_names() -> None:
    funnel = b2b(lambda d: d.update(renamed_from={"lead": ["mql", "marketing_lead"]}))
    assert funnel.former == {"mql": "lead", "marketing_lead": "lead"}
    assert copy.deepcopy(funnel.former) == dict(funnel.former)


def test_report_reads_stages_by_name_over_outputs_from_before_and_after_a_rename(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed_doc = orjson.loads((PRESET_DIR / "b2b-sales.json").read_bytes())
    rename_lead(renamed_doc)
    definition = tmp_path / "b2b-sales.json"
    definition.write_bytes(orjson.dumps(renamed_doc))
    stream = Touchpoints()
    before = replay([OLD], [stream("form_submitted", "a"), stream("meeting_held", "a", after=DAY)])
    after = replay([b2b(rename_lead)], [stream("form_submitted", "b"), stream("meeting_held", "b", after=DAY)])
    assert [o["to_stage"] for o in before.outputs + after.outputs] == ["lead", "prospect", "mql", "prospect"]
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in before.outputs + after.outputs))
    assert main(["report", "--funnel-file", str(definition), "--input", str(outputs), "--format", "json"]) == 0
    [funnel] = orjson.loads(capsys.readouterr().out)["funnels"]
    assert funnel["stages_not_in_definition"] == []
    mql = next(row for row in funnel["stages"] if row["stage"] == "mql")
    assert (mql["entered"], mql["converted"]) == (2, 2)
