"""Each stat is defined once (core/stats.py); what is built from it must agree with the tables."""

from __future__ import annotations

import uuid

from core.finish import FinishedJob, completion_payload
from core.schema import Job, UserStats
from core.stats import JOB_STATS, STAT_NAMES, STATS, VAULT_STATS, Source
from core.vocabulary import JobStatus, Topic
from outbox.apply import APPLY_BATCH
from reconcile.invariants import EXPECTED_STATS
from reconcile.recompute import CORRECT, CREATE


def test_every_stat_is_a_user_stats_column_and_only_those() -> None:
    columns = set(UserStats.__table__.c.keys()) - {"user_id", "created_at", "updated_at"}
    assert set(STAT_NAMES) == columns


def test_job_stats_sum_job_columns_that_the_completion_payload_carries() -> None:
    job = FinishedJob(uuid.uuid4(), uuid.uuid4(), JobStatus.COMPLETED, 10, 7, 3)
    payload = completion_payload(job)
    for stat in JOB_STATS:
        assert stat.job_figure in Job.__table__.c
        assert stat.job_figure in payload


def test_every_effect_names_a_known_topic_and_a_sign() -> None:
    for stat in STATS:
        assert stat.effects, stat.name
        for effect in stat.effects:
            assert effect.topic in set(Topic)
            assert effect.sign in (1, -1)


def test_the_apply_statement_and_the_checker_cover_every_stat() -> None:
    for name in STAT_NAMES:
        assert f"AS {name}" in APPLY_BATCH.text
        assert f"{name} = s.{name} + excluded.{name}" in APPLY_BATCH.text
        assert f"AS exp_{name}" in EXPECTED_STATS


def test_the_recompute_writes_exactly_the_vault_stats() -> None:
    assert [s.source for s in VAULT_STATS] == [Source.VAULT]
    writes = CORRECT.text + CREATE.text
    for stat in VAULT_STATS:
        assert f"SET {stat.name} = s.{stat.name} + c.delta" in CORRECT.text
        assert f"(user_id, {stat.name})" in CREATE.text
    for stat in JOB_STATS:
        assert stat.name not in writes
