"""`funnel-processor replay` as a user runs it: files, stdin, dead letters, --until."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from factories import touchpoint

from processor.config.schemas import validator

TIMEOUT_S = 60


def _tp(n: int, contact: str, kind: str, day: int) -> dict[str, object]:
    return touchpoint(kind, contact, at=f"2026-01-{day:02d}T10:00:00Z", event_id=f"e{n}")


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "replay", *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


GOOD = [
    _tp(1, "c1", "ad_click", 1),
    _tp(2, "c1", "form_submitted", 2),
    _tp(3, "c2", "quote_requested", 3),
]


def test_bad_lines_go_to_stderr_as_dead_letters_and_do_not_stop_the_run(tmp_path: Path) -> None:
    lines = [orjson.dumps(GOOD[0]), b"{not json", b"", b"   ", b"[1, 2]", orjson.dumps(GOOD[1]), b"\xff\xfe"]
    lines += [orjson.dumps({**GOOD[2], "occurred_at": "2026-01-03"}), orjson.dumps(GOOD[2])]
    result = _run("--funnel", "b2b-sales", "--input", str(_write(tmp_path / "in.jsonl", lines)))
    assert result.returncode == 0, result.stderr
    *dead, summary = result.stderr.splitlines()  # the dead letters, then the summary line
    letters = [orjson.loads(line) for line in dead]
    assert summary.startswith(b"funnel-processor replay: ")
    assert [(d["reason"], d["source"]["line"]) for d in letters] == [
        ("invalid_json", 2),
        ("not_an_object", 5),
        ("invalid_json", 7),
        ("bad_timestamp", 8),
    ]
    assert letters[0]["payload"] == "{not json" and letters[0]["payload_encoding"] == "utf-8"
    assert letters[2]["payload_encoding"] == "base64"
    for letter in letters:
        assert letter["source"]["file"].endswith("in.jsonl")
        validator("deadletter").validate(letter)
    outputs = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(o["contact_id"], o["to_stage"]) for o in outputs] == [
        ("c1", "suspect"),
        ("c1", "lead"),
        ("c2", "prospect"),
    ]


def test_stdin_gives_the_same_outputs_as_a_file(tmp_path: Path) -> None:
    data = b"\n".join(orjson.dumps(t) for t in GOOD) + b"\n"
    from_file = _run("--funnel", "b2b-sales", "--input", str(_write(tmp_path / "in.jsonl", data.splitlines())))
    from_stdin = _run("--funnel", "b2b-sales", "--input", "-", stdin=data)
    assert from_file.returncode == from_stdin.returncode == 0
    assert from_file.stdout == from_stdin.stdout and from_file.stdout.count(b"\n") == 3


def test_until_fires_what_is_due_by_then(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", [orjson.dumps(GOOD[2])])  # quote-to-deal: request stalls after 7d
    before = _run("--funnel", "quote-to-deal", "--input", str(path), "--until", "2026-01-10T10:00:00Z")
    after = _run("--funnel", "quote-to-deal", "--input", str(path), "--until", "2026-01-10T10:00:00.000001Z")
    assert before.returncode == after.returncode == 0
    assert [orjson.loads(x)["kind"] for x in before.stdout.splitlines()] == ["transition"]
    stalled = orjson.loads(after.stdout.splitlines()[-1])
    assert (stalled["reason"], stalled["occurred_at"]) == ("stalled", "2026-01-10T10:00:00Z")


@pytest.mark.parametrize("stdin", [False, True])
def test_an_until_before_the_latest_touchpoint_is_refused(tmp_path: Path, stdin: bool) -> None:
    path = _write(tmp_path / "in.jsonl", [orjson.dumps(t) for t in GOOD])
    args = ["--funnel", "b2b-sales", "--until", "2026-01-02T12:00:00Z"]
    if stdin:
        result = _run(*args, "--input", "-", stdin=path.read_bytes())
    else:
        result = _run(*args, "--input", str(path))
        assert result.stdout == b""  # refused before anything is printed
    assert result.returncode == 2
    assert b"earlier than" in result.stderr


def test_a_funnel_is_required_and_a_missing_file_is_reported(tmp_path: Path) -> None:
    none = _run("--input", "-", stdin=b"")
    assert none.returncode == 2
    assert none.stderr == b"funnel-processor replay: name at least one --funnel NAME or --funnel-file PATH\n"
    missing = _run("--funnel", "aida", "--input", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and b"no such input file" in missing.stderr


def test_a_broken_funnel_file_is_refused_with_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "mine.json"
    bad.write_text('{"name": "mine", "stages": ["a", "a"], "rules": [{"stage": "a", "type": "x"}]}')
    result = _run("--funnel-file", str(bad), "--input", "-", stdin=b"")
    assert result.returncode == 2
    assert b"mine.json" in result.stderr and b"stages[1]" in result.stderr and b"duplicate" in result.stderr


def _summary(result: subprocess.CompletedProcess[bytes]) -> str:
    """The last line on stderr, which a finished replay always prints."""
    return result.stderr.decode().splitlines()[-1]


def test_a_summary_line_ends_stderr_and_stays_off_stdout(tmp_path: Path) -> None:
    lines = [orjson.dumps(t) for t in GOOD] + [b"{not json", orjson.dumps(GOOD[0]), b"", b"[1]"]
    result = _run("--funnel", "b2b-sales", "--input", str(_write(tmp_path / "in.jsonl", lines)))
    assert result.returncode == 0
    assert _summary(result) == (
        "funnel-processor replay: 4 touchpoints read, 3 outputs written, 2 dead letters, 1 duplicate"
    )
    assert all(orjson.loads(line)["kind"] == "transition" for line in result.stdout.splitlines())
    assert b"replay:" not in result.stdout


def test_an_empty_input_is_not_silent() -> None:
    result = _run("--funnel", "b2b-sales", "--input", "-", stdin=b"")
    assert (result.returncode, result.stdout) == (0, b"")
    assert result.stderr.decode() == (
        "funnel-processor replay: 0 touchpoints read, 0 outputs written, 0 dead letters, 0 duplicates\n"
    )


def test_the_summary_counts_the_drop_offs_fired_at_the_end_and_late_touchpoints(tmp_path: Path) -> None:
    late = {**GOOD[1], "event_id": "late", "occurred_at": "2026-01-01T09:00:00Z"}  # after day 3, back on day 1
    lines = [orjson.dumps(t) for t in (*GOOD, late)]
    result = _run(
        "--funnel",
        "quote-to-deal",
        "--input",
        str(_write(tmp_path / "in.jsonl", lines)),
        "--until",
        "2026-02-01T00:00:00Z",
    )
    assert result.returncode == 0
    assert result.stdout.count(b"\n") == 2  # c2 enters at request, then stalls there by --until
    assert _summary(result) == (
        "funnel-processor replay: 4 touchpoints read, 2 outputs written, 0 dead letters, 0 duplicates, "
        "1 late (out of event-time order)"
    )
