"""The CLI's client knows every error code the service's contract declares."""

from __future__ import annotations

import httpx
import pytest

from cli.api import ERRORS_BY_CODE, domain_error
from core.errors import InsufficientCredits, InvalidInput, TallyError, TooManyRequests
from web.contract.errors import CODE_BY_HTTP_STATUS, ERROR_CODES, STATUS_BY_ERROR


def answer(status: int, code: str, **detail: object) -> httpx.Response:
    body = {"error": {"code": code, "message": "what went wrong", **detail}}
    return httpx.Response(status, json=body, headers={"Retry-After": "7"})


def status_of(code: str) -> int:
    statuses = [status for _, status, known in STATUS_BY_ERROR if known == code]
    statuses += [status for status, known in CODE_BY_HTTP_STATUS.items() if known == code]
    return statuses[0] if statuses else 500


def test_no_declared_code_is_unmapped() -> None:
    assert ERROR_CODES - ERRORS_BY_CODE.keys() == set()
    assert ERRORS_BY_CODE.keys() - ERROR_CODES == set(), "the client maps codes nobody sends"


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_is_a_clear_domain_error(code: str) -> None:
    error = domain_error(answer(status_of(code), code))
    assert isinstance(error, TallyError)
    assert str(error)


@pytest.mark.parametrize(("kind", "status", "code"), STATUS_BY_ERROR)
def test_a_domain_error_comes_back_as_the_kind_the_service_answered(
    kind: type[TallyError], status: int, code: str
) -> None:
    kinds = {known for known, _, same in STATUS_BY_ERROR if same == code}
    error = domain_error(answer(status, code, field="count", needed=5, balance=2))
    assert isinstance(error, tuple(kinds))


def test_details_survive_the_trip() -> None:
    short = domain_error(answer(402, "insufficient_credits", needed=5, balance=2))
    assert isinstance(short, InsufficientCredits)
    assert (short.needed, short.balance) == (5, 2)
    invalid = domain_error(answer(400, "invalid_input", field="count"))
    assert isinstance(invalid, InvalidInput) and invalid.field == "count"
    later = domain_error(answer(429, "too_many_requests"))
    assert isinstance(later, TooManyRequests) and later.retry_after == 7
    assert "retry in 7 s" in str(later)


def test_an_answer_without_a_code_falls_back_on_its_status() -> None:
    assert isinstance(domain_error(httpx.Response(400, text="<html>bad</html>")), InvalidInput)
    assert type(domain_error(httpx.Response(502, text="bad gateway"))) is TallyError
