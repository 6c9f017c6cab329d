"""A turn's failures by reason and its orphans, added to their jobs when it is recorded."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.vocabulary import FailureReason
from worker.fanout import ItemOutcome

ADD_COUNTS = text(
    "UPDATE jobs j SET orphans = j.orphans + t.orphans, failure_reasons = ("
    "  SELECT coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) FROM ("
    "    SELECT reason, sum(n)::int AS n FROM ("
    "      SELECT key AS reason, value::int AS n FROM jsonb_each_text(j.failure_reasons)"
    "      UNION ALL"
    "      SELECT key, value::int FROM jsonb_each_text(t.reasons)"
    "    ) every GROUP BY reason"
    "  ) summed"
    ") FROM unnest(CAST(:job_ids AS uuid[]), CAST(:orphans AS int[]), "
    "CAST(:reasons AS jsonb[])) AS t(job_id, orphans, reasons) WHERE j.id = t.job_id"
)


def failure_reasons(outcomes: Sequence[ItemOutcome]) -> Counter[FailureReason]:
    """How many of these outcomes failed, by reason."""
    return Counter(o.reason or FailureReason.FAILED for o in outcomes if o.account is None)


def add_outcome_counts(
    session: Session, runs: Sequence[tuple[uuid.UUID, Sequence[ItemOutcome]]]
) -> None:
    """Add failures by reason and orphans to the jobs' rows, in the recording transaction.

    The caller holds the jobs' row locks or takes them in key order after this; one
    statement for every job that has something to add.
    """
    reasons: dict[uuid.UUID, Counter[FailureReason]] = {}
    orphans: Counter[uuid.UUID] = Counter()
    for job_id, outcomes in runs:
        reasons.setdefault(job_id, Counter()).update(failure_reasons(outcomes))
        orphans[job_id] += sum(o.orphans for o in outcomes)
    jobs = sorted((j for j in reasons if reasons[j] or orphans[j]), key=str)
    if not jobs:
        return
    session.execute(
        ADD_COUNTS,
        {
            "job_ids": [str(j) for j in jobs],
            "orphans": [orphans[j] for j in jobs],
            "reasons": [json.dumps(reasons[j]) for j in jobs],
        },
    )
