"""A slice's failures by reason and its orphans, added to its job when it is recorded."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from worker.fanout import ItemOutcome

UNKNOWN_REASON = "failed"

ADD_COUNTS = text(
    "UPDATE jobs SET orphans = orphans + :orphans, failure_reasons = ("
    "  SELECT coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) FROM ("
    "    SELECT reason, sum(n)::int AS n FROM ("
    "      SELECT key AS reason, value::int AS n FROM jsonb_each_text(failure_reasons)"
    "      UNION ALL"
    "      SELECT key, value::int FROM jsonb_each_text(CAST(:reasons AS jsonb))"
    "    ) every GROUP BY reason"
    "  ) summed"
    ") WHERE id = :job_id"
)


def failure_reasons(outcomes: Sequence[ItemOutcome]) -> Counter[str]:
    """How many of these outcomes failed, by reason."""
    return Counter(o.reason or UNKNOWN_REASON for o in outcomes if o.account is None)


def add_outcome_counts(
    session: Session, job_id: uuid.UUID, outcomes: Sequence[ItemOutcome]
) -> None:
    """Add failures by reason and orphans to the job row, inside the recording transaction."""
    reasons = failure_reasons(outcomes)
    orphans = sum(o.orphans for o in outcomes)
    if not reasons and not orphans:
        return
    session.execute(
        ADD_COUNTS, {"orphans": orphans, "reasons": json.dumps(reasons), "job_id": job_id}
    )
