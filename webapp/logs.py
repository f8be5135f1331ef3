"""Structured logs: one JSON object per line, for log collectors (CHORUS_LOG_FORMAT=json).

Each line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, `process`, and `exception`
(the formatted traceback) when there is one; anything passed as `extra={...}` to a log call is
added under its own name.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# What every LogRecord has: these are not `extra` fields.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in entry:
                entry[name] = value
        return json.dumps(entry, default=str, ensure_ascii=False)
