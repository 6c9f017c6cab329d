"""The one door through which a job's or a slice's status changes, with its counters.

Every statement that moves a job or a slice to another status, or adds a slice's outcome
to its job, is named here; the operations that own the transactions (the submit, a turn,
its recording, a cancel, the sweep, a job that cannot run) execute them and hold no such
statement of their own (tests/unit/test_boundaries.py checks it). The legal moves:

    job    queued → running                     a turn claims its first slice
           queued | running → completed         its last slice is recorded (core/finish.py)
           queued | running → cancelled         its cancel settled what no one ran
           queued | running → failed            it cannot run (its provider is unusable)
    slice  pending → running                    a turn claims it under a lease
           running → pending                    given back, waiting for its provider, or
                                                taken back by the sweep once its lease ran out
           running → done                       its outcomes are recorded
           pending | running → done             a cancel or a failed job settles it

A running slice whose lease ran out may also be claimed again (running → running, one
attempt more). Nothing leaves `done`, `completed`, `failed` or `cancelled`.
"""

from __future__ import annotations

from sqlalchemy import text

from core.vocabulary import UNFINISHED_SQL, JobStatus, SliceStatus

J, S = JobStatus, SliceStatus

JOB_MOVES = frozenset(
    {(J.QUEUED, J.RUNNING)}
    | {(a, b) for a in (J.QUEUED, J.RUNNING) for b in (J.COMPLETED, J.CANCELLED, J.FAILED)}
)
SLICE_MOVES = frozenset(
    {
        (S.PENDING, S.RUNNING),
        (S.RUNNING, S.RUNNING),
        (S.RUNNING, S.PENDING),
        (S.RUNNING, S.DONE),
        (S.PENDING, S.DONE),
    }
)


def legal_job_move(before: JobStatus, after: JobStatus) -> bool:
    """Whether a job may go from `before` to `after` (staying put is always legal)."""
    return before == after or (before, after) in JOB_MOVES


def legal_slice_move(before: SliceStatus, after: SliceStatus) -> bool:
    """Whether a slice may go from `before` to `after` (staying put is always legal)."""
    return before == after or (before, after) in SLICE_MOVES


PAIRS = "unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[]))"
# What a claim returns: the slice, its job's provider and owner, and the keys its slots
# keep from the slots they retry (NULL for nearly every slice: one primary-key probe).
CLAIMED = (
    "s.job_id, s.slice_index, s.start_index, s.stop_index, s.attempts, j.provider, j.user_id, "
    "(SELECT jsonb_object_agg(k.item_index, k.provider_key) FROM kept_keys k "
    "WHERE k.job_id = s.job_id AND k.item_index >= s.start_index "
    "AND k.item_index < s.stop_index) AS kept_keys"
)
ATTEMPTS = (
    "unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[]), CAST(:attempts AS int[]))"
)

# pending → running: the slices a turn chose, unless their job finished or its cancel was
# asked meanwhile (a cancel settles pending slices at once; one given back after it waits
# for the sweep).
CLAIM = text(
    f"""
    UPDATE job_slices s SET status = '{S.RUNNING}', attempts = s.attempts + 1,
        lease_expires_at = now() + make_interval(secs => :lease)
    FROM {PAIRS} AS t(job_id, slice_index), jobs j
    WHERE s.job_id = t.job_id AND s.slice_index = t.slice_index AND j.id = s.job_id
      AND j.status IN {UNFINISHED_SQL} AND j.cancel_requested_at IS NULL
    RETURNING {CLAIMED}
    """
)

# pending (or running past its lease) → running: one named slice, claimed directly.
CLAIM_ONE = text(
    f"""
    UPDATE job_slices s SET status = '{S.RUNNING}', attempts = s.attempts + 1,
        lease_expires_at = now() + make_interval(secs => :lease)
    FROM jobs j
    WHERE j.id = s.job_id AND s.job_id = :job_id AND s.slice_index = :slice_index
      AND j.status IN {UNFINISHED_SQL} AND j.cancel_requested_at IS NULL
      AND (s.status = '{S.PENDING}' OR (s.status = '{S.RUNNING}' AND s.lease_expires_at < now()))
    RETURNING {CLAIMED}
    """
)

# queued → running: jobs whose first slice was just claimed.
START_JOBS = text(
    f"UPDATE jobs SET status = '{J.RUNNING}', started_at = now(), updated_at = now() "
    f"WHERE id = ANY(CAST(:job_ids AS uuid[])) AND status = '{J.QUEUED}' "
    "RETURNING id"
)

# running → pending: slices these attempts still own, given back to be claimed at once.
GIVE_BACK = text(
    f"UPDATE job_slices s SET status = '{S.PENDING}', lease_expires_at = NULL "
    f"FROM {ATTEMPTS} AS t(job_id, slice_index, attempt) "
    "WHERE s.job_id = t.job_id AND s.slice_index = t.slice_index "
    f"AND s.status = '{S.RUNNING}' AND s.attempts = t.attempt "
    "RETURNING s.user_id"
)

# running → pending until `retry_at`: a slice waiting for its provider; its attempt is handed
# back, so waiting never uses up TALLY_SLICE_MAX_ATTEMPTS.
DEFER = text(
    f"UPDATE job_slices SET status = '{S.PENDING}', lease_expires_at = NULL, "
    "attempts = attempts - 1, enqueued_at = to_timestamp(:retry_at) "
    "WHERE job_id = :job_id AND slice_index = :slice_index "
    f"AND status = '{S.RUNNING}' AND attempts = :attempt"
)

# running → pending: slices whose lease ran out (their worker died or froze).
TAKE_BACK = text(
    f"""
    UPDATE job_slices s SET status = '{S.PENDING}', lease_expires_at = NULL
    FROM (
        SELECT job_id, slice_index FROM job_slices
        WHERE status = '{S.RUNNING}' AND lease_expires_at < now()
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) expired
    WHERE s.job_id = expired.job_id AND s.slice_index = expired.slice_index
    RETURNING s.job_id, s.user_id
    """
)

# running → done: recorded slices with their outcomes.
CLOSE = text(
    f"UPDATE job_slices s SET status = '{S.DONE}', successful = t.successful, "
    "failures = t.failures, cancelled = t.cancelled, finished_at = now(), "
    "lease_expires_at = NULL "
    "FROM unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[]), "
    "CAST(:successful AS int[]), CAST(:failures AS int[]), CAST(:cancelled AS int[])) "
    "AS t(job_id, slice_index, successful, failures, cancelled) "
    "WHERE s.job_id = t.job_id AND s.slice_index = t.slice_index"
)

# The recorded slices' outcomes added to their jobs (whose row locks the caller holds).
COUNT_IN_JOBS = text(
    "UPDATE jobs j SET successful = j.successful + t.successful, "
    "failures = j.failures + t.failures, cancelled = j.cancelled + t.cancelled, "
    "slices_done = j.slices_done + t.slices, updated_at = now() "
    "FROM unnest(CAST(:job_ids AS uuid[]), CAST(:successful AS int[]), "
    "CAST(:failures AS int[]), CAST(:cancelled AS int[]), CAST(:slices AS int[])) "
    "AS t(job_id, successful, failures, cancelled, slices) "
    "WHERE j.id = t.job_id "
    "RETURNING j.id, j.slices_done, j.slices_total, j.cancel_requested_at, j.cancelled"
)

# pending | running past its lease → done: a cancelled job's slices no one holds, with all
# their items cancelled (a slice a worker holds is skipped, never waited for).
SETTLE = text(
    f"UPDATE job_slices SET status = '{S.DONE}', "
    "cancelled = stop_index - start_index, finished_at = now(), lease_expires_at = NULL "
    "WHERE job_id = :job_id AND slice_index IN ("
    "  SELECT slice_index FROM job_slices WHERE job_id = :job_id "
    f"  AND (status = '{S.PENDING}' "
    f"       OR (status = '{S.RUNNING}' AND lease_expires_at < now())) "
    "  FOR UPDATE SKIP LOCKED) "
    "RETURNING stop_index - start_index AS size"
)

# The settled slices' items added to the job as cancelled.
COUNT_SETTLED = text(
    "UPDATE jobs SET cancelled = cancelled + :items, slices_done = slices_done + :n, "
    "updated_at = now() WHERE id = :job_id RETURNING slices_done, slices_total"
)

# pending | running → done: every unfinished slice of a job that cannot run, all failed.
FAIL_SLICES = text(
    f"UPDATE job_slices SET status = '{S.DONE}', failures = stop_index - start_index, "
    "finished_at = now(), lease_expires_at = NULL "
    f"WHERE job_id = :job_id AND status <> '{S.DONE}' "
    "RETURNING stop_index - start_index AS size"
)

# Their items added to the job as failures, with why it could not run.
COUNT_FAILED = text(
    "UPDATE jobs SET failures = failures + :failed, slices_done = slices_done + :n, "
    f"error = :error WHERE id = :job_id AND status IN {UNFINISHED_SQL}"
)

# queued | running → completed | cancelled | failed: each job still unfinished, with what
# its release and outbox row need (core/finish.py).
FINISH = text(
    f"""
    UPDATE jobs SET status = t.status, finished_at = now(), updated_at = now(),
        started_at = coalesce(jobs.started_at, now())
    FROM unnest(CAST(:job_ids AS uuid[]), CAST(:statuses AS text[])) AS t(id, status)
    WHERE jobs.id = t.id AND jobs.status IN {UNFINISHED_SQL}
    RETURNING jobs.id, jobs.user_id, jobs.status, jobs.requested, jobs.successful,
        jobs.failures, jobs.cancelled, jobs.price
    """
)
