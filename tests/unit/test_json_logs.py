"""Structured logs (CHORUS_LOG_FORMAT=json): one JSON object per line that a log collector can
read without a parsing rule, extras and tracebacks included."""

from __future__ import annotations

import json
import logging
import sys

from webapp.logs import JsonFormatter


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    return logging.getLogger("chorus.test").makeRecord(
        "chorus.test", logging.WARNING, __file__, 1, message, args, exc_info, extra=extra
    )


def test_a_log_line_is_one_json_object():
    line = JsonFormatter().format(record("room %s: %d chunks", "abc", 3))

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "room abc: 3 chunks"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "chorus.test"
    assert entry["time"].endswith("+00:00")


def test_extras_become_fields_of_their_own():
    entry = json.loads(JsonFormatter().format(record("recorded", room="abc", sequence=7)))

    assert entry["room"] == "abc"
    assert entry["sequence"] == 7
    assert "args" not in entry and "msg" not in entry  # the record's own attributes stay out


def test_a_traceback_stays_inside_the_line():
    try:
        raise ValueError("broken chunk")
    except ValueError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))

    entry = json.loads(line)
    assert "\n" not in line
    assert "ValueError: broken chunk" in entry["exception"]
