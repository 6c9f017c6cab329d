"""A job's slices: claiming one under a lease, and recording its outcomes once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import transitions, turn_queue
from core.cancel import ending
from core.crypto import SecretBox
from core.database import SessionFactory
from core.finish import FinishedJob, finish_locked_jobs, notify_progress
from core.providers.base import slot_key
from core.vocabulary import SliceStatus
from worker.fanout import ItemOutcome
from worker.outcome_counts import add_outcome_counts
from worker.owed_turns import repay_turn

# A slice's accounts travel as one array per column: building them costs the worker far
# less than one parameter set per row. Slots a redelivery already stored are skipped.
STORE_ACCOUNTS = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
    "username, secret_encrypted, metadata) "
    "SELECT CAST(:user_id AS uuid), job_id, item_index, provider, "
    "external_id, username, secret, meta "
    "FROM unnest(CAST(:job_ids AS uuid[]), CAST(:indices AS int[]), "
    "CAST(:providers AS text[]), CAST(:external_ids AS text[]), "
    "CAST(:usernames AS text[]), CAST(:secrets AS bytea[]), CAST(:metadata AS jsonb[])) "
    "AS t(job_id, item_index, provider, external_id, username, secret, meta) "
    "ON CONFLICT (job_id, item_index) DO NOTHING "
    "RETURNING job_id, item_index"
)

# A turn's ambiguous failures, with the keys their calls used (one statement, only when any).
KEEP_AMBIGUOUS = text(
    "INSERT INTO ambiguous_items (job_id, item_index, provider_key) "
    "SELECT * FROM unnest(CAST(:job_ids AS uuid[]), CAST(:indices AS int[]), "
    "CAST(:keys AS text[])) ON CONFLICT (job_id, item_index) DO NOTHING"
)

# Every key below travels as parallel arrays, one element per slice (or job).
SLICE_KEYS = "unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[]))"

EXTEND_LEASES = text(
    "UPDATE job_slices s SET lease_expires_at = now() + make_interval(secs => :lease) "
    "FROM unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[]), "
    "CAST(:attempts AS int[])) AS t(job_id, slice_index, attempt) "
    "WHERE s.job_id = t.job_id AND s.slice_index = t.slice_index "
    f"AND s.status = '{SliceStatus.RUNNING}' AND s.attempts = t.attempt "
    "RETURNING s.job_id, s.slice_index"
)


LOCK_UNFINISHED = text(
    f"SELECT s.job_id, s.slice_index FROM job_slices s JOIN {SLICE_KEYS} "
    "AS t(job_id, slice_index) ON s.job_id = t.job_id AND s.slice_index = t.slice_index "
    f"WHERE s.status <> '{SliceStatus.DONE}' ORDER BY s.job_id, s.slice_index FOR UPDATE OF s"
)


LOCK_JOBS = text(
    "SELECT id FROM jobs WHERE id = ANY(CAST(:job_ids AS uuid[])) ORDER BY id FOR NO KEY UPDATE"
)


@dataclass(frozen=True)
class SliceClaim:
    """A slice this worker may process until its lease expires."""

    job_id: uuid.UUID
    slice_index: int
    user_id: uuid.UUID
    provider: str
    start_index: int
    stop_index: int
    attempt: int
    lanes: int = 0  # provider calls this attempt may have in flight; 0: the process's bound
    # Slots that ask with the key of the ambiguous slot they retry (core/retry.py).
    kept_keys: Mapping[int, str] = field(default_factory=dict, compare=False)

    @property
    def indices(self) -> range:
        """The job slots this slice covers."""
        return range(self.start_index, self.stop_index)

    def key(self, index: int) -> str:
        """The provider key a slot of this slice asks with."""
        return slot_key(self.job_id, index, self.kept_keys)


def kept_keys(claimed: Mapping[str, str] | None) -> dict[int, str]:
    """A claim's kept keys as returned by the claim statement (transitions.CLAIMED)."""
    return {int(index): key for index, key in (claimed or {}).items()}


@dataclass(frozen=True)
class SliceResult:
    """What recording a slice did: counts, and the job if this slice finished it."""

    recorded: bool
    successful: int = 0
    failures: int = 0
    finished: FinishedJob | None = None
    cancelled: int = 0
    owed_turn: bool = False  # a turn to send (worker/owed_turns.py)
    finished_jobs: list[FinishedJob] = field(default_factory=list)  # every job it finished


def claim(
    sessions: SessionFactory, job_id: uuid.UUID, slice_index: int, lease_seconds: float
) -> SliceClaim | None:
    """Take a pending slice, or one whose lease expired; None if it is not ours to run."""
    with sessions() as session, session.begin():
        return claim_in(session, job_id, slice_index, lease_seconds)


def claim_in(
    session: Session, job_id: uuid.UUID, slice_index: int, lease_seconds: float
) -> SliceClaim | None:
    """Claim one slice inside the caller's transaction (see `claim`)."""
    row = session.execute(
        transitions.CLAIM_ONE,
        {"job_id": job_id, "slice_index": slice_index, "lease": lease_seconds},
    ).first()
    if row is None:
        return None
    started = session.execute(transitions.START_JOBS, {"job_ids": [str(job_id)]}).scalars()
    notify_progress(session, *started)
    return SliceClaim(
        job_id,
        slice_index,
        row.user_id,
        row.provider,
        row.start_index,
        row.stop_index,
        row.attempts,
        kept_keys=kept_keys(row.kept_keys),
    )


def extend_leases(
    sessions: SessionFactory, claims: Sequence[SliceClaim], lease_seconds: float
) -> set[tuple[uuid.UUID, int]]:
    """Push the leases forward of the slices these attempts still own; return those."""
    with sessions() as session, session.begin():
        rows = session.execute(
            EXTEND_LEASES,
            {
                "lease": lease_seconds,
                "job_ids": [str(c.job_id) for c in claims],
                "slice_indices": [c.slice_index for c in claims],
                "attempts": [c.attempt for c in claims],
            },
        ).all()
        return {(row.job_id, row.slice_index) for row in rows}


def give_back(sessions: SessionFactory, claim: SliceClaim) -> bool:
    """Return a slice this attempt still owns to `pending`, so a retry can claim it at once."""
    return bool(give_back_all(sessions, [claim]))


def give_back_all(sessions: SessionFactory, claims: Sequence[SliceClaim]) -> int:
    """Return the slices these attempts still own to `pending`, their users to the turn
    queue; how many were given back."""
    with sessions() as session, session.begin():
        rows = session.execute(
            transitions.GIVE_BACK,
            {
                "job_ids": [str(c.job_id) for c in claims],
                "slice_indices": [c.slice_index for c in claims],
                "attempts": [c.attempt for c in claims],
            },
        ).all()
        turn_queue.arrive_all(session, {row.user_id for row in rows})
        return len(rows)


def record(
    sessions: SessionFactory, claim: SliceClaim, outcomes: Sequence[ItemOutcome], box: SecretBox
) -> SliceResult:
    """Store one slice's accounts and counts (see `record_turn`)."""
    return record_turn(sessions, [(claim, outcomes)], box)


def record_turn(
    sessions: SessionFactory,
    runs: Sequence[tuple[SliceClaim, Sequence[ItemOutcome]]],
    box: SecretBox,
) -> SliceResult:
    """Store a turn's accounts and counts, and finish every job whose last slice this was.

    One transaction and a fixed number of statements, however many slices and jobs the
    turn ran. A slice already recorded (a redelivery, or a lease taken over) is skipped.
    Items without an outcome were never attempted (the job was cancelled): they count as
    cancelled.
    """
    # Secrets are sealed before the transaction: it holds its locks for the writes alone.
    sealed = {
        (claim.job_id, outcome.item_index): box.seal(outcome.account.secret)
        for claim, outcomes in runs
        for outcome in outcomes
        if outcome.account is not None
    }
    with sessions() as session, session.begin():
        kept = _lock_unfinished_slices(session, runs)
        if not kept:
            return SliceResult(recorded=False)
        created = _store_accounts(session, kept, sealed)
        _keep_ambiguous(session, kept)
        counts = {
            (c.job_id, c.slice_index): SliceCounts(
                created.get((c.job_id, c.slice_index), 0),
                sum(1 for o in outcomes if o.account is None),
                len(c.indices) - len(outcomes),
            )
            for c, outcomes in kept
        }
        _close_slices(session, counts)
        # Job row locks in one order before any job is written: two turns never deadlock,
        # and a cancel waits only for these last statements. (NO KEY UPDATE: the vault rows'
        # foreign keys share these rows with other turns.)
        session.execute(LOCK_JOBS, {"job_ids": sorted({str(c.job_id) for c, _ in kept})})
        add_outcome_counts(session, [(c.job_id, o) for c, o in kept])
        finished = _count_slices_in_jobs(session, counts)
        owed = repay_turn(session)
        return SliceResult(
            True,
            sum(c.successful for c in counts.values()),
            sum(c.failures for c in counts.values()),
            finished[0] if finished else None,
            sum(c.cancelled for c in counts.values()),
            owed,
            finished,
        )


def _lock_unfinished_slices(
    session: Session, runs: Sequence[tuple[SliceClaim, Sequence[ItemOutcome]]]
) -> list[tuple[SliceClaim, Sequence[ItemOutcome]]]:
    """Lock the turn's slices not yet recorded, in key order; return their runs."""
    ordered = sorted(runs, key=lambda run: (str(run[0].job_id), run[0].slice_index))
    rows = session.execute(
        LOCK_UNFINISHED,
        {
            "job_ids": [str(c.job_id) for c, _ in ordered],
            "slice_indices": [c.slice_index for c, _ in ordered],
        },
    ).all()
    open_slices = {(row.job_id, row.slice_index) for row in rows}
    return [(c, o) for c, o in ordered if (c.job_id, c.slice_index) in open_slices]


def _store_accounts(
    session: Session,
    runs: Sequence[tuple[SliceClaim, Sequence[ItemOutcome]]],
    sealed: dict[tuple[uuid.UUID, int], bytes],
) -> dict[tuple[uuid.UUID, int], int]:
    """Insert the turn's accounts in one statement; the number stored per slice."""
    accounts = [
        (claim, outcome.item_index, outcome.account)
        for claim, outcomes in runs
        for outcome in outcomes
        if outcome.account is not None
    ]
    if not accounts:
        return {}
    columns = {
        "user_id": runs[0][0].user_id,
        "job_ids": [str(claim.job_id) for claim, _, _ in accounts],
        "providers": [claim.provider for claim, _, _ in accounts],
        "indices": [index for _, index, _ in accounts],
        "external_ids": [account.external_id for _, _, account in accounts],
        "usernames": [account.username for _, _, account in accounts],
        "secrets": [sealed[(claim.job_id, index)] for claim, index, _ in accounts],
        "metadata": [json.dumps(account.metadata) for _, _, account in accounts],
    }
    stored = session.execute(STORE_ACCOUNTS, columns).all()
    slice_of = {(c.job_id, i): c.slice_index for c, _ in runs for i in c.indices}
    created: dict[tuple[uuid.UUID, int], int] = {}
    for row in stored:
        key = (row.job_id, slice_of[(row.job_id, row.item_index)])
        created[key] = created.get(key, 0) + 1
    return created


def _keep_ambiguous(
    session: Session, runs: Sequence[tuple[SliceClaim, Sequence[ItemOutcome]]]
) -> None:
    """Record the failed slots whose calls went unanswered, with the keys they used."""
    slots = [
        (claim, outcome.item_index)
        for claim, outcomes in runs
        for outcome in outcomes
        if outcome.account is None and outcome.ambiguous
    ]
    if not slots:
        return
    values = {
        "job_ids": [str(claim.job_id) for claim, _ in slots],
        "indices": [index for _, index in slots],
        "keys": [claim.key(index) for claim, index in slots],
    }
    session.execute(KEEP_AMBIGUOUS, values)


@dataclass(frozen=True)
class SliceCounts:
    """What a slice's items came to: created, failed, never attempted."""

    successful: int
    failures: int
    cancelled: int


def _close_slices(session: Session, counts: dict[tuple[uuid.UUID, int], SliceCounts]) -> None:
    keys = list(counts)
    session.execute(
        transitions.CLOSE,
        {
            "job_ids": [str(job_id) for job_id, _ in keys],
            "slice_indices": [index for _, index in keys],
            "successful": [counts[k].successful for k in keys],
            "failures": [counts[k].failures for k in keys],
            "cancelled": [counts[k].cancelled for k in keys],
        },
    )


def _count_slices_in_jobs(
    session: Session, counts: dict[tuple[uuid.UUID, int], SliceCounts]
) -> list[FinishedJob]:
    """Add the slices to their jobs (whose row locks the caller holds); finish those complete."""
    per_job: dict[uuid.UUID, list[int]] = {}
    for (job_id, _), c in counts.items():
        totals = per_job.setdefault(job_id, [0, 0, 0, 0])
        for i, n in enumerate((c.successful, c.failures, c.cancelled, 1)):
            totals[i] += n
    jobs = sorted(per_job, key=str)
    rows = session.execute(
        transitions.COUNT_IN_JOBS,
        {
            "job_ids": [str(j) for j in jobs],
            "successful": [per_job[j][0] for j in jobs],
            "failures": [per_job[j][1] for j in jobs],
            "cancelled": [per_job[j][2] for j in jobs],
            "slices": [per_job[j][3] for j in jobs],
        },
    ).all()
    notify_progress(session, *(row.id for row in rows if row.slices_done < row.slices_total))
    endings = {
        row.id: ending(row.cancel_requested_at is not None, row.cancelled)
        for row in rows
        if row.slices_done >= row.slices_total
    }
    return finish_locked_jobs(session, endings)
