"""A large outbox backlog: finished jobs exactly as the pipeline leaves them, not yet applied."""

from __future__ import annotations

from sqlalchemy import text

from core.database import Database
from core.users import create_user

# Each statement writes what finishing a job writes (worker/slices.py, core/finish.py): the
# terminal job and its done slice, the hold and the release, the vault rows of its
# successes, the charge on the balance, and the job.completed outbox row. The jobs were
# submitted an hour ago: they take no place in their users' submits of the last minute.
SEED = [
    """
    INSERT INTO jobs (user_id, provider, requested, successful, failures, price,
                      slices_total, slices_done, status, created_at, started_at, finished_at)
    SELECT u.id, 'sandbox', :items, n % (:items + 1), :items - n % (:items + 1), 1, 1, 1,
           'completed', now() - interval '1 hour', now(), now()
    FROM users u CROSS JOIN generate_series(1, :per_user) AS n
    """,
    """
    INSERT INTO job_slices (job_id, user_id, slice_index, start_index, stop_index, status,
                            attempts, successful, failures, finished_at)
    SELECT id, user_id, 0, 0, requested, 'done', 1, successful, failures, now() FROM jobs
    """,
    """
    INSERT INTO credit_ledger (user_id, job_id, kind, amount)
    SELECT user_id, id, 'hold', -requested * price FROM jobs
    UNION ALL
    SELECT user_id, id, 'release', failures * price FROM jobs
    """,
    """
    UPDATE user_credits c SET balance = c.balance - charged.amount
    FROM (SELECT user_id, sum(successful * price) AS amount FROM jobs GROUP BY user_id) charged
    WHERE c.user_id = charged.user_id
    """,
    """
    INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, username,
                               secret_encrypted)
    SELECT j.user_id, j.id, i, 'sandbox', 'ext-' || j.id || '-' || i, 'user-' || i, '\\x00'
    FROM jobs j CROSS JOIN LATERAL generate_series(0, j.successful - 1) AS i
    """,
    """
    INSERT INTO outbox (topic, key, user_id, payload)
    SELECT 'job.completed', id::text, user_id,
           jsonb_build_object('job_id', id::text, 'requested', requested,
                              'successful', successful, 'failures', failures)
    FROM jobs ORDER BY random()
    """,
]


def seed_backlog(db: Database, users: int, jobs_per_user: int, items: int = 3) -> int:
    """On an empty database, create users with finished, unapplied jobs; return the backlog."""
    for n in range(users):
        create_user(db.sessions, f"backlog-{n}", credits=jobs_per_user * items)
    with db.sessions() as session, session.begin():
        existing = session.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        assert existing == 0, "the backlog is seeded on an empty database"
        for statement in SEED:
            session.execute(text(statement), {"items": items, "per_user": jobs_per_user})
        backlog = session.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    return int(backlog)
