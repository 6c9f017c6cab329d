"""Settings.from_env: URL normalisation, strict numbers, and refused placeholder secrets."""

from __future__ import annotations

import pytest

from core.crypto import generate_key
from core.entry import settings_or_exit
from core.errors import ConfigurationError
from core.migrate import PROJECT_ROOT
from core.settings import PLACEHOLDER_SECRETS, VARIABLES, Settings, normalize_database_url

BASE_ENV = {"DATABASE_URL": "postgresql://u:p@db.example:5432/tally"}


def settings_from(**env: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **env})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg2://u:p@h:5432/d"),
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg2://u:p@h:5432/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
    ],
)
def test_database_url_accepts_heroku_scheme(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected
    assert settings_from(DATABASE_URL=given).database_url == expected


def test_defaults_apply_when_variables_are_missing_or_empty() -> None:
    settings = settings_from(TALLY_PRICE="", TALLY_SANDBOX_FAILURE_RATE="")
    assert settings.price == 1
    assert settings.max_job_count == 100_000
    assert settings.sandbox.failure_rate == 0.0
    assert settings.environment == "development"


def test_every_variable_reaches_its_field() -> None:
    settings = settings_from(
        REDIS_URL="redis://r:6379/3",
        TALLY_PRICE="3",
        TALLY_MAX_JOB_COUNT="77",
        TALLY_SLICE_SIZE="9",
        TALLY_PROVIDER_CONCURRENCY="5",
        TALLY_SANDBOX_FAILURE_RATE="0.25",
        TALLY_LEASE_SECONDS="12.5",
        TALLY_REPAIR_DRIFT="true",
    )
    assert settings.redis_url == "redis://r:6379/3"
    assert (settings.price, settings.max_job_count, settings.slice_size) == (3, 77, 9)
    assert settings.provider_concurrency == 5
    assert settings.sandbox.failure_rate == 0.25
    assert settings.intervals.lease == 12.5
    assert settings.repair_drift is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TALLY_PRICE", "one"),
        ("TALLY_PRICE", "1.5"),
        ("TALLY_MAX_JOB_COUNT", "10k"),
        ("TALLY_SLICE_SIZE", " "),
        ("TALLY_PROVIDER_ATTEMPTS", "3x"),
        ("TALLY_SANDBOX_FAILURE_RATE", "a fifth"),
        ("TALLY_LEASE_SECONDS", "thirty"),
    ],
)
def test_bad_numbers_raise_configuration_error(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings_from(**{name: value})


@pytest.mark.parametrize(
    "env",
    [
        {"TALLY_PRICE": "-1"},
        {"TALLY_SLICE_SIZE": "0"},
        {"TALLY_MAX_JOB_COUNT": "0"},
        {"TALLY_PROVIDER_CONCURRENCY": "0"},
        {"TALLY_RETENTION_DAYS": "0"},
        {"TALLY_REPORTS_KEPT": "0"},
        {"TALLY_RETENTION_BATCH": "50001"},
        {"TALLY_RETENTION_INTERVAL": "-5"},
    ],
)
def test_out_of_range_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        settings_from(**env)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TALLY_REPAIR_DRIFT", "ture", "must be true or false"),
        ("TALLY_DRAMATIQ_METRICS", "yes please", "must be true or false"),
        ("TALLY_PROVIDER", "htp", "must be one of sandbox, http"),
        ("TALLY_PROVIDERS", "sandbox,htp", "must be one of sandbox, http"),
        ("TALLY_ENV", "prod", "must be one of development, production"),
        ("LOG_FORMAT", "xml", "must be one of text, json"),
        ("TALLY_LOG_FORMAT", "yaml", "must be one of text, json"),
        ("TALLY_LEASE_SECONDS", "-1", "must be a number > 0"),
        ("TALLY_SWEEP_INTERVAL", "0", "must be a number > 0"),
        ("TALLY_SANDBOX_FAILURE_RATE", "1.5", "must be a number <= 1"),
        ("TALLY_PROVIDER_ATTEMPTS", "0", "must be an integer >= 1"),
        ("TALLY_RETENTION_BATCH", "0", "must be an integer >= 1"),
        ("TALLY_RETENTION_DAYS", "soon", "must be a number"),
    ],
)
def test_each_refusal_is_one_line_naming_the_variable_and_value(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings_from(**{name: value})
    message = str(refused.value)
    assert message.startswith(f"{name} {says}")
    assert repr(value) in message
    assert "\n" not in message


def test_secret_values_never_appear_in_a_refusal() -> None:
    with pytest.raises(ConfigurationError) as refused:
        settings_from(TALLY_ENV="production", TALLY_FERNET_KEY="hunter2-not-a-key")
    assert "hunter2" not in str(refused.value)


def test_every_variable_names_a_real_field() -> None:
    for name, path in VARIABLES.items():
        target: object = Settings(database_url="x")
        for part in path.split("."):
            assert hasattr(target, part), name
            target = getattr(target, part)


def test_settings_or_exit_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit("worker", Settings.secret_box, env=BASE_ENV)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "tally worker: TALLY_FERNET_KEY is not set\n"


def test_settings_or_exit_returns_settings_that_meet_the_requirements() -> None:
    env = {**BASE_ENV, "REDIS_URL": "redis://r:6379/0"}
    assert settings_or_exit("web", Settings.require_broker, env=env).redis_url == env["REDIS_URL"]


def test_missing_database_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Settings.from_env({})


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_SECRETS))
def test_placeholder_fernet_key_refused_outside_development(placeholder: str) -> None:
    with pytest.raises(ConfigurationError, match="TALLY_FERNET_KEY"):
        settings_from(TALLY_ENV="production", TALLY_FERNET_KEY=placeholder)


def test_malformed_fernet_key_refused_outside_development() -> None:
    with pytest.raises(ConfigurationError, match="TALLY_FERNET_KEY"):
        settings_from(TALLY_ENV="production", TALLY_FERNET_KEY="not-a-fernet-key")


def test_placeholder_fernet_key_allowed_in_development() -> None:
    assert settings_from(TALLY_FERNET_KEY="changeme").fernet_key == "changeme"


def test_real_fernet_key_accepted_in_production() -> None:
    key = generate_key()
    settings = settings_from(TALLY_ENV="production", TALLY_FERNET_KEY=key)
    assert settings.environment == "production"
    assert settings.fernet_key == key


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_SECRETS - {""}))
def test_placeholder_metrics_token_refused_outside_development(placeholder: str) -> None:
    env = {"TALLY_ENV": "production", "TALLY_FERNET_KEY": generate_key()}
    with pytest.raises(ConfigurationError, match="TALLY_METRICS_TOKEN"):
        settings_from(**env, TALLY_METRICS_TOKEN=placeholder)
    assert settings_from(**env, TALLY_METRICS_TOKEN="a-real-token").metrics_token == "a-real-token"


def test_probe_settings_default_and_refuse_a_non_positive_outbox_age() -> None:
    assert (settings_from().metrics_token, settings_from().ready_max_outbox_age) == ("", 60.0)
    assert settings_from(TALLY_READY_MAX_OUTBOX_AGE="5").ready_max_outbox_age == 5.0
    with pytest.raises(ConfigurationError, match="TALLY_READY_MAX_OUTBOX_AGE"):
        settings_from(TALLY_READY_MAX_OUTBOX_AGE="0")


def test_retention_defaults_and_variables() -> None:
    defaults = settings_from()
    assert (defaults.retention_days, defaults.reports_kept) == (30.0, 100)
    assert (defaults.retention_batch, defaults.intervals.retention) == (1000, 300.0)
    given = settings_from(
        TALLY_RETENTION_DAYS="7.5",
        TALLY_REPORTS_KEPT="10",
        TALLY_RETENTION_BATCH="200",
        TALLY_RETENTION_INTERVAL="60",
    )
    assert (given.retention_days, given.reports_kept) == (7.5, 10)
    assert (given.retention_batch, given.intervals.retention) == (200, 60.0)


def test_with_changes_returns_a_new_object_and_keeps_the_original() -> None:
    original = settings_from()
    changed = original.with_changes(price=5)
    assert (original.price, changed.price) == (1, 5)
    assert changed.database_url == original.database_url


def test_the_readme_documents_every_variable() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    assert [name for name in VARIABLES if f"`{name}`" not in table] == []


def test_the_providers_users_may_choose_are_an_operator_allowlist() -> None:
    assert settings_from().offered_providers == ("sandbox",)
    url = "https://provisioning.example/accounts"
    both = settings_from(TALLY_PROVIDERS="sandbox, http", TALLY_PROVIDER_URL=url)
    assert both.offered_providers == ("sandbox", "http")
    real = settings_from(TALLY_PROVIDER="http", TALLY_PROVIDER_URL=url)
    assert real.offered_providers == ("http",)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TALLY_PROVIDER": "http", "TALLY_PROVIDERS": "sandbox"}, "must include TALLY_PROVIDER"),
        ({"TALLY_PROVIDERS": "sandbox,http"}, "TALLY_PROVIDER_URL is not set"),
        ({"TALLY_PROVIDER": "http"}, "TALLY_PROVIDER_URL is not set"),
    ],
)
def test_an_allowlist_that_cannot_work_is_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        settings_from(**env)


def test_identity_settings_default_and_read_lists() -> None:
    settings = settings_from()
    assert (settings.jwt_audience, settings.jwt_issuer, settings.signup_credits) == (
        "authenticated",
        "",
        0,
    )
    assert (settings.rls, settings.cors_origins) == (False, ())
    given = settings_from(
        TALLY_CORS_ORIGINS="https://app.example, http://localhost:3000", TALLY_RLS="true"
    )
    assert given.cors_origins == ("https://app.example", "http://localhost:3000")
    assert given.rls is True


def test_short_identity_secrets_are_refused_without_showing_them() -> None:
    with pytest.raises(ConfigurationError, match="TALLY_SERVICE_KEY") as refused:
        settings_from(TALLY_SERVICE_KEY="short-key")
    assert "short-key" not in str(refused.value)
    production = {"TALLY_ENV": "production", "TALLY_FERNET_KEY": generate_key()}
    with pytest.raises(ConfigurationError, match="TALLY_JWT_SECRET"):
        settings_from(**production, TALLY_JWT_SECRET="too-short")
    assert settings_from(TALLY_JWT_SECRET="dev-secret").jwt_secret == "dev-secret"
    with pytest.raises(ConfigurationError, match="TALLY_SIGNUP_CREDITS"):
        settings_from(TALLY_SIGNUP_CREDITS="-1")
    with pytest.raises(ConfigurationError, match="TALLY_RLS") as bad_flag:
        settings_from(TALLY_RLS="maybe")
    assert "maybe" in str(bad_flag.value)


def test_turn_settings_default_and_refuse_a_limit_below_one() -> None:
    defaults = settings_from()
    assert (defaults.user_concurrency, defaults.fair_turns) == (10_000, True)
    chosen = settings_from(TALLY_USER_CONCURRENCY="75", TALLY_FAIR_TURNS="false")
    assert (chosen.user_concurrency, chosen.fair_turns) == (75, False)
    with pytest.raises(ConfigurationError, match="TALLY_USER_CONCURRENCY must be an integer >= 1"):
        settings_from(TALLY_USER_CONCURRENCY="0")
    with pytest.raises(ConfigurationError, match="TALLY_FAIR_TURNS must be true or false"):
        settings_from(TALLY_FAIR_TURNS="sometimes")


def test_tally_log_format_wins_over_the_older_log_format() -> None:
    assert settings_from(TALLY_LOG_FORMAT="json").log_format == "json"
    assert settings_from(LOG_FORMAT="text", TALLY_LOG_FORMAT="json").log_format == "json"
    assert settings_from(LOG_FORMAT="json").log_format == "json"


def test_the_direct_url_defaults_to_the_pooled_one_and_pooling_is_explicit() -> None:
    settings = settings_from()
    assert settings.direct_database_url == settings.database_url
    assert settings.database_pooling == "session"
    pooled = settings_from(
        DATABASE_URL="postgres://u@bouncer:6432/db",
        DATABASE_DIRECT_URL="postgres://u@pg:5432/db",
        TALLY_DATABASE_POOLING="transaction",
    )
    assert pooled.direct_database_url == "postgresql+psycopg2://u@pg:5432/db"
    assert pooled.database_pooling == "transaction"
    with pytest.raises(ConfigurationError, match="TALLY_DATABASE_POOLING must be one of session"):
        settings_from(TALLY_DATABASE_POOLING="statement")


def test_the_daemons_metrics_port_is_off_by_default_and_checked() -> None:
    assert settings_from().metrics_port == 0
    assert settings_from(TALLY_METRICS_PORT="9300").metrics_port == 9300
    with pytest.raises(ConfigurationError, match="TALLY_METRICS_PORT"):
        settings_from(TALLY_METRICS_PORT="70000")
