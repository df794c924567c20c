"""Settings from the environment (AIHP_*): the embedded default needs no configuration."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Deployment settings. With none set: SQLite in ./var, no broker, mail to ./var/mail."""

    # populate_by_name: a field with an environment alias (mail_dir) is still set by its name.
    model_config = SettingsConfigDict(
        env_prefix="AIHP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = "sqlite:///var/aihp.db"
    pathway_dir: Path | None = None
    site_limits_file: Path | None = None
    broker_url: str | None = None
    result_backend: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str = "reminders@aih-pathways.local"
    clinic_name: str = "Hepatology clinic"
    message_domain: str = "aih-pathways.local"
    # Where people reach the pages (https://aihp.example.org): clinician emails link to the patient.
    public_url: str | None = None
    smtp_timeout_seconds: float = 10.0
    # Without smtp_host, mail is written to this local mailbox (a Maildir a person can read).
    # AIHP_OUTBOX_DIR, its former name, is still read for deployed configurations.
    mail_dir: Path = Field(
        Path("var/mail"), validation_alias=AliasChoices("AIHP_MAIL_DIR", "AIHP_OUTBOX_DIR")
    )
    dispatch_interval_seconds: float = 30.0
    stale_claim_seconds: int = 60
    delivery_max_attempts: int = 5
    delivery_retry_base_seconds: float = 30.0
    delivery_retry_cap_seconds: float = 3600.0
    dispatch_batch_size: int = 500
    dispatch_max_queued: int = 2000
    delivery_batch_size: int = 50  # reminders per delivery task (one SMTP connection)
    review_interval_seconds: float = 300.0
    # The HTTP edge: request body limits (a FHIR Bundle may be larger) and JSON nesting depth.
    max_body_bytes: int = 1_000_000
    max_bundle_bytes: int = 20_000_000
    max_json_depth: int = 64
    # The pages' session cookie: Secure (HTTPS only) unless the embedded demo turns it off. A
    # session (server-side, engine/services/sign_in.py) ends `session_hours` after the login or
    # `session_idle_minutes` after its last request; a page request may trust a session checked
    # within `session_cache_seconds` in this process (0: look it up every time).
    cookie_secure: bool = True
    session_hours: float = 12.0
    session_idle_minutes: float = 30.0
    session_cache_seconds: float = 5.0
    # Password login: `login_max_failures` wrong passwords for one user name within
    # `login_failure_window_minutes` lock that name for `login_lockout_minutes`.
    password_min_length: int = 12
    login_max_failures: int = 5
    login_failure_window_minutes: float = 15.0
    login_lockout_minutes: float = 15.0
    # argon2id cost (OWASP's minimum: 2 passes over 19 MiB, one lane; about 0.1 s a login).
    password_hash_time_cost: int = 2
    password_hash_memory_kib: int = 19456
    password_hash_parallelism: int = 1
    # The HL7 lab feed (`aihp hl7 listen`) acts as the user this bearer token stands for.
    hl7_token: str | None = None


@cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
