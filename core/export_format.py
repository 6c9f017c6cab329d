"""Writing export pages as CSV or NDJSON; each row carries the cursor to resume after it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import msgspec

from core.crypto import SecretBox
from core.export_cursor import Scope, encode
from core.export_rows import AccountRow

FIELDS = ("id", "job_id", "item_index", "provider", "external_id", "username")
TAIL = ("metadata", "created_at")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
_encoder = msgspec.json.Encoder()


def header(format: str, secrets: bool) -> bytes:
    """The CSV header line (secrets add a column), or nothing for NDJSON."""
    if format != "csv":
        return b""
    return _csv_line([*FIELDS, *(["secret"] if secrets else []), *TAIL, "cursor"])


def render(rows: Sequence[AccountRow], scope: Scope, format: str, box: SecretBox | None) -> bytes:
    """One page of rows in the format, with secrets opened when a box is given."""
    if format == "csv":
        return b"".join(_csv_line(_values(row, scope, box)) for row in rows)
    return b"".join(_encoder.encode(_record(row, scope, box)) + b"\n" for row in rows)


def _record(row: AccountRow, scope: Scope, box: SecretBox | None) -> dict[str, object]:
    record: dict[str, object] = {name: getattr(row, name) for name in FIELDS}
    if box is not None:
        record["secret"] = box.open(row.secret_encrypted)
    record["metadata"] = row.metadata
    record["created_at"] = row.created_at.isoformat()
    record["cursor"] = encode(scope, row.position(scope))
    return record


def _values(row: AccountRow, scope: Scope, box: SecretBox | None) -> list[object]:
    record = _record(row, scope, box)
    record["metadata"] = json.dumps(row.metadata, sort_keys=True, separators=(",", ":"))
    return list(record.values())


def _csv_line(values: Sequence[object]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode("utf-8")
