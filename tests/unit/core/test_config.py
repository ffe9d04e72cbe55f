"""Settings are validated at start: bad URLs, inconsistent limits and example secrets are refused."""

from __future__ import annotations

import pytest

from core.config import StorageKind, get_settings, load_settings
from core.errors import ConfigError


def test_defaults_are_valid_and_local() -> None:
    settings = load_settings()

    assert settings.storage_kind is StorageKind.LOCAL
    assert settings.task_soft_time_limit_s < settings.task_time_limit_s < settings.broker_visibility_timeout_s


def test_reads_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/app")
    monkeypatch.setenv("STORAGE_URL", "s3://media/deepfakestream/")
    monkeypatch.setenv("SOURCE_BUCKETS", "incoming, archive")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
    get_settings.cache_clear()
    try:
        settings = get_settings()
    finally:
        get_settings.cache_clear()

    assert settings.database_url == "postgresql+psycopg2://u@db:5432/app"
    assert (settings.storage_kind, settings.storage_bucket, settings.storage_prefix) == (
        StorageKind.S3,
        "media",
        "deepfakestream/",
    )
    assert settings.source_buckets == ("incoming", "archive")
    assert settings.s3_access_key_id is not None and settings.s3_access_key_id.get_secret_value() == "key"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"database_url": "mysql://x/y"}, "DATABASE_URL"),
        ({"database_url": "postgresql://host"}, "DATABASE_URL"),
        ({"broker_url": "amqp://guest@rabbit//"}, "BROKER_URL"),
        ({"storage_url": "gs://bucket"}, "STORAGE_URL"),
        ({"storage_url": "file://relative/dir"}, "STORAGE_URL"),
        ({"storage_url": "s3://"}, "STORAGE_URL"),
        ({"s3_endpoint_url": "minio:9000"}, "S3_ENDPOINT_URL"),
        ({"max_upload_bytes": 0}, "MAX_UPLOAD_BYTES"),
        ({"allowed_containers": "mp4,bmp"}, "ALLOWED_CONTAINERS"),
        ({"log_level": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_are_refused_by_name(overrides: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(**overrides)


def test_time_limits_must_nest_inside_visibility_timeout() -> None:
    with pytest.raises(ConfigError, match="TASK_SOFT_TIME_LIMIT_S < TASK_TIME_LIMIT_S < BROKER_VISIBILITY"):
        load_settings(task_soft_time_limit_s=100, task_time_limit_s=200, broker_visibility_timeout_s=150)


def test_webhook_claim_outlasts_the_attempt_it_covers() -> None:
    settings = load_settings(webhook_timeout_s=60, webhook_connect_timeout_s=5)
    assert settings.webhook_claim_s > settings.webhook_timeout_s
    with pytest.raises(ConfigError, match="WEBHOOK_CONNECT_TIMEOUT_S is above WEBHOOK_TIMEOUT_S"):
        load_settings(webhook_timeout_s=2, webhook_connect_timeout_s=5)


def test_connection_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="HEADER_TIMEOUT_S"):
        load_settings(header_timeout_s=0)
    with pytest.raises(ConfigError, match="MAX_CONNECTIONS_PER_ADDRESS"):
        load_settings(max_connections_per_address=-1)
    assert load_settings(max_connections_per_address=0).max_connections_per_address == 0


def test_body_deadlines_are_checked() -> None:
    with pytest.raises(ConfigError, match="BODY_IDLE_TIMEOUT_S"):
        load_settings(body_idle_timeout_s=120, upload_body_timeout_s=60)
    with pytest.raises(ConfigError, match="BODY_TIMEOUT_S"):
        load_settings(body_timeout_s=0)


def test_production_refuses_example_secret() -> None:
    with pytest.raises(ConfigError, match="example value"):
        load_settings(
            environment="production",
            storage_url="s3://media",
            s3_access_key_id="minioadmin",
            s3_secret_access_key="minioadmin",
        )


def test_half_a_credential_pair_is_refused() -> None:
    with pytest.raises(ConfigError, match="both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        load_settings(storage_url="s3://media", s3_access_key_id="only-the-id")
