"""The study database: its tables (SQLAlchemy Core), engines and transactions.

SQLite by default (WAL, busy timeout, writes begin IMMEDIATE); any SQLAlchemy URL works.
A database of an older schema version is migrated when it is opened (`MIGRATIONS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from human_study.errors import StudyError

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000


# --------------------------------------------------------------------------- schema
class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them as naive UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime(timezone=True), nullable=False),
)

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    sa.Column("folder", sa.Text, nullable=False),
    sa.Column("audit_path", sa.Text),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("admin_token_sha256", sa.String(64), nullable=False),
)

trials = sa.Table(
    "trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("pair_index", sa.Integer, nullable=False),
    sa.Column("trivial_image_id", sa.Integer, nullable=False),
    sa.Column("trivial_label", sa.Integer, nullable=False),
    sa.Column("trivial_class", sa.String(256), nullable=False),
    sa.Column("trivial_n_correct", sa.Integer, nullable=False),
    sa.Column("trivial_file", sa.String(64), nullable=False),
    sa.Column("impossible_image_id", sa.Integer),
    sa.Column("impossible_label", sa.Integer),
    sa.Column("impossible_class", sa.String(256), nullable=False),
    sa.Column("impossible_n_correct", sa.Integer),
    sa.Column("impossible_file", sa.String(64), nullable=False),
    sa.UniqueConstraint("study_id", "kind", "pair_index", name="uq_trials_study_kind_pair"),
    sa.CheckConstraint("kind IN ('practice', 'main', 'catch')", name="ck_trials_kind"),
)

observers = sa.Table(
    "observers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    sa.Column("finished_at", UTCDateTime(timezone=True)),
    # version 2: consent survives a reload; a recruiting service's participant id (never exported);
    # why the experiment ended early ("attention")
    sa.Column("consented_at", UTCDateTime(timezone=True)),
    sa.Column("participant_id", sa.String(128)),
    sa.Column("ended_reason", sa.String(32)),
    sa.UniqueConstraint("study_id", "code", name="uq_observers_study_code"),
    sa.UniqueConstraint("study_id", "ordinal", name="uq_observers_study_ordinal"),
    sa.Index("uq_observers_study_participant", "study_id", "participant_id", unique=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("observer_id", sa.Integer, sa.ForeignKey("observers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
    sa.Column("user_agent", sa.String(512)),
    # version 2: the display calibration (CSS px per mm, viewing distance) and the recruiting
    # service's ids from the link (never exported)
    sa.Column("px_per_mm", sa.Float),
    sa.Column("viewing_distance_mm", sa.Float),
    sa.Column("participant_id", sa.String(128)),
    sa.Column("recruitment_study_id", sa.String(128)),
    sa.Column("recruitment_session_id", sa.String(128)),
    # version 3: the display's refresh interval (ms) the browser measured from requestAnimationFrame
    sa.Column("refresh_ms", sa.Float),
    sa.Index("ix_sessions_observer", "observer_id"),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("observer_id", sa.Integer, sa.ForeignKey("observers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("trivial_side", sa.String(5), nullable=False),
    sa.Column("choice", sa.String(5), nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
    sa.Column("rt_ms", sa.Float),
    sa.Column("rt_source", sa.String(8)),
    sa.Column("shown_at", UTCDateTime(timezone=True)),
    sa.Column("answered_at", UTCDateTime(timezone=True), nullable=False),
    # version 2: the trial's phases as the browser measured them (ms), e.g. {"fixation": 300.1, ...}
    sa.Column("phases", sa.JSON),
    # One answer per observer and trial, whatever the session: a refresh (new session) or a
    # double submit can never add a second row. (session, trial) follows from it, and is kept
    # as its own key because the page thinks in sessions.
    sa.UniqueConstraint("observer_id", "trial_id", name="uq_responses_observer_trial"),
    sa.UniqueConstraint("session_id", "trial_id", name="uq_responses_session_trial"),
    sa.UniqueConstraint("observer_id", "position", name="uq_responses_observer_position"),
    sa.CheckConstraint("choice IN ('left', 'right')", name="ck_responses_choice"),
    sa.CheckConstraint("trivial_side IN ('left', 'right')", name="ck_responses_trivial_side"),
)


# --------------------------------------------------------------------------- engine
def sqlite_url(path: str | os.PathLike) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def public_url(url: str) -> str:
    """The URL with its password masked, for files and messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_connect(busy_timeout_ms: int):
    def on_connect(dbapi_connection, connection_record):
        # Let SQLAlchemy's begin event (below) emit BEGIN, so writes can begin IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return on_connect


def _sqlite_begin(conn) -> None:
    # A write transaction takes the write lock at BEGIN; a deferred one that upgrades later can
    # fail at once with SQLITE_BUSY in WAL mode, which the busy timeout does not cover.
    immediate = conn.get_execution_options().get("ddd_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _private_sqlite_file(database: str) -> None:
    """Create a missing SQLite database file as 0600 (owner only), whatever the umask.

    The file holds observer codes (credentials) and every response. SQLite gives the -wal and
    -shm files it creates the database file's permissions, so they are 0600 too. An existing
    file keeps its permissions.
    """
    if database.startswith("file:"):  # a URI filename: SQLite's own business
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists, or its folder does not (SQLite then says so)
        return
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine for `url`; SQLite files get WAL mode, a busy timeout and foreign keys, and a new
    SQLite file is created readable by its owner only (with its -wal and -shm files)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        _private_sqlite_file(parsed.database)
    if memory:
        engine = sa.create_engine(
            parsed, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = sa.create_engine(parsed, pool_size=8, max_overflow=24)
    event.listen(engine, "connect", _sqlite_connect(busy_timeout_ms))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def now() -> datetime:
    """The current time, timezone-aware UTC (as every timestamp in the database)."""
    return datetime.now(timezone.utc)


@contextmanager
def writing(engine: Engine) -> Iterator[sa.Connection]:
    """A write transaction (on SQLite it takes the write lock at BEGIN)."""
    with engine.connect() as conn:
        conn.execution_options(ddd_write=True)
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A read transaction."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _add_missing_columns(conn: sa.Connection, table_names: tuple[str, ...]) -> None:
    """ALTER TABLE ... ADD COLUMN for each nullable column of `metadata` the database lacks,
    and CREATE INDEX for its missing indexes (version 1 -> 2 adds only such columns)."""
    inspector = sa.inspect(conn)
    for name in table_names:
        table = metadata.tables[name]
        present = {c["name"] for c in inspector.get_columns(name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {name} ADD COLUMN "{column.name}" {kind}')
        for index in table.indexes:
            index.create(conn, checkfirst=True)


#: version -> what brings a database of that version to the next one
MIGRATIONS = {
    1: lambda conn: _add_missing_columns(conn, ("observers", "sessions", "responses")),
    2: lambda conn: _add_missing_columns(conn, ("sessions",)),
}


def create_schema(engine: Engine) -> None:
    """Create the tables that are missing and migrate an older database (MIGRATIONS); refuse a
    database of a newer schema version."""
    with writing(engine) as conn:
        found = None
        if sa.inspect(conn).has_table("schema_version"):
            found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
            if found is not None and found > SCHEMA_VERSION:
                raise StudyError(
                    f"the study database {engine.url.render_as_string(hide_password=True)} has schema "
                    f"version {found}, but this ddd-audit uses version {SCHEMA_VERSION}; use a newer ddd-audit"
                )
        if found is not None:
            for version in range(found, SCHEMA_VERSION):
                MIGRATIONS[version](conn)
                conn.execute(schema_version.insert().values(version=version + 1, applied_at=now()))
        metadata.create_all(conn, checkfirst=True)
        if conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 0:
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now()))
