"""JSON Schemas of the API's bodies, as web/serialize.py shapes them (for OpenAPI)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

INT: Schema = {"type": "integer"}
STR: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _page(item: str) -> Schema:
    return _object(
        {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "total": INT,
            "limit": INT,
            "offset": INT,
        }
    )


SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": _object(
                {"code": STR, "message": STR, "field": STR, "needed": INT, "balance": INT},
                required=["code", "message"],
            )
        }
    ),
    "JobRequest": _object(
        {"count": {**INT, "minimum": 1}, "provider": {**STR, "default": "sandbox"}},
        required=["count"],
    ),
    "Job": _object(
        {
            "id": UUID,
            "status": {"enum": ["queued", "running", "completed", "failed"]},
            "requested": INT,
            "successful": INT,
            "failures": INT,
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "provider": STR,
            "created_at": TIME,
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "error": {"type": ["string", "null"]},
        }
    ),
    "JobPage": _page("Job"),
    "Stats": _object(
        {
            "user_id": UUID,
            "requested": INT,
            "successful": INT,
            "failures": INT,
            "business_centers": INT,
        }
    ),
    "LedgerEntry": _object(
        {
            "id": INT,
            "kind": {"enum": ["grant", "hold", "release", "adjust"]},
            "amount": INT,
            "job_id": {"type": ["string", "null"], "format": "uuid"},
            "note": {"type": ["string", "null"]},
            "created_at": TIME,
        }
    ),
    "Credits": _object(
        {
            "balance": INT,
            "entries": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEntry"}},
        }
    ),
    "Account": _object(
        {
            "id": UUID,
            "job_id": UUID,
            "item_index": INT,
            "provider": STR,
            "external_id": STR,
            "username": STR,
            "metadata": {"type": "object"},
            "created_at": TIME,
        }
    ),
    "AccountPage": _page("Account"),
    "Secret": _object({"id": UUID, "secret": STR}),
    "Health": _object({"status": STR}, required=["status"]),
    "Ready": _object(
        {"status": STR, "outbox_backlog": INT, "outbox_oldest_pending_seconds": {"type": "number"}},
        required=["status"],
    ),
    "Drift": _object(
        {
            "subject": STR,
            "subject_id": STR,
            "field": STR,
            "expected": INT,
            "actual": INT,
            "repaired": {"type": "boolean"},
        }
    ),
    "Report": _object(
        {
            "id": INT,
            "started_at": TIME,
            "duration_seconds": {"type": "number"},
            "origin": STR,
            "users_checked": INT,
            "outbox_backlog": INT,
            "oldest_pending_seconds": {"type": "number"},
            "jobs_swept": {"type": ["integer", "null"]},
            "slices_resent": {"type": ["integer", "null"]},
            "drift_count": INT,
            "repair": {"type": "boolean"},
            "repaired_count": INT,
            "unrepaired": INT,
            "drifts": {"type": "array", "items": {"$ref": "#/components/schemas/Drift"}},
            "drift_limit": INT,
            "drift_offset": INT,
        },
        required=["id", "started_at", "drift_count"],
    ),
    "ReportPage": _page("Report"),
}
