"""Reasons are spelled once, in core/vocabulary.py; everything else names them from there."""

from __future__ import annotations

import re
from pathlib import Path

from cli.client import describe_status
from core.migrate import PROJECT_ROOT
from core.vocabulary import LABELS, FailureReason, WaitingReason

PRODUCT = ("core", "worker", "outbox", "web", "reconcile", "webhooks", "cli", "devstack")
VOCABULARY = PROJECT_ROOT / "core" / "vocabulary.py"
# Words distinctive enough to find by search ("refused" or "failed" are in plain prose too).
DISTINCT = [r.value for r in [*WaitingReason, *FailureReason] if "_" in r.value]


def sources() -> list[Path]:
    """The product's Python and JavaScript, but for the vocabulary itself."""
    found: list[Path] = []
    for package in PRODUCT:
        for pattern in ("*.py", "*.js"):
            found += (PROJECT_ROOT / package).rglob(pattern)
    return [path for path in found if path != VOCABULARY]


def test_every_reason_has_words_for_people_and_only_reasons_do() -> None:
    assert set(LABELS) == {WaitingReason, FailureReason}
    for kind, labels in LABELS.items():
        assert set(labels) == set(kind), kind
        assert all(label.strip() for label in labels.values()), kind


def test_a_failure_of_patience_carries_the_waiting_reasons_word() -> None:
    assert FailureReason.UNAVAILABLE.value == WaitingReason.UNAVAILABLE.value


def test_no_module_spells_a_reason_of_its_own() -> None:
    assert DISTINCT
    words = re.compile(r"\b(" + "|".join(DISTINCT) + r")\b")
    spelled = [
        (str(path.relative_to(PROJECT_ROOT)), found)
        for path in sources()
        for found in words.findall(path.read_text())
    ]
    assert spelled == []


def test_the_cli_says_why_a_job_waits_in_the_vocabularys_words() -> None:
    job = {"status": "running", "waiting": WaitingReason.RATE_LIMITED.value, "retry_at": None}
    words = LABELS[WaitingReason][WaitingReason.RATE_LIMITED]
    assert describe_status(job) == f"running (waiting: {words})"
