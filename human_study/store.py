"""The study database: studies, trials, observers, sessions and responses (SQLAlchemy Core).

SQLite by default (WAL, busy timeout, writes begin IMMEDIATE); any SQLAlchemy URL works. Each
response is committed before `record_response` returns and is stored at most once per observer
and trial. All SQL is parameterised; no UI, no statistics, no admin token stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from human_study.design import (
    KINDS,
    SIDES,
    STIMULUS_FILE_RE,
    StudyDesign,
    StudyError,
    derive_seed,
    observer_schedule,
)

SCHEMA_VERSION = 1
STUDY_FORMAT = "ddd-audit-study/1"
DEFAULT_DB_NAME = "study.db"
BUSY_TIMEOUT_MS = 30_000
EXPERIMENT_PAGE = "experiment"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud and typed
CODE_LENGTH = 8
STUDY_ID_RE = re.compile(r"^[0-9a-f]{12}$")
CODE_RE = re.compile(r"^[A-Z0-9_-]{3,32}$")
RT_SOURCES = ("client", "server")
MAX_RT_MS = 24 * 3600 * 1000.0


class UnknownStudy(StudyError):
    """No study with this id (or the id is malformed)."""


class UnknownObserver(StudyError):
    """No observer with this code in this study (or the code is malformed)."""


class AccessDenied(StudyError):
    """The admin token is missing or wrong."""


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
    sa.UniqueConstraint("study_id", "code", name="uq_observers_study_code"),
    sa.UniqueConstraint("study_id", "ordinal", name="uq_observers_study_ordinal"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("observer_id", sa.Integer, sa.ForeignKey("observers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
    sa.Column("user_agent", sa.String(512)),
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
    # One answer per observer and trial, whatever the session: a refresh (new session) or a
    # double submit can never add a second row. (session, trial) follows from it, and is kept
    # as its own key because the page thinks in sessions.
    sa.UniqueConstraint("observer_id", "trial_id", name="uq_responses_observer_trial"),
    sa.UniqueConstraint("session_id", "trial_id", name="uq_responses_session_trial"),
    sa.UniqueConstraint("observer_id", "position", name="uq_responses_observer_position"),
    sa.CheckConstraint("choice IN ('left', 'right')", name="ck_responses_choice"),
    sa.CheckConstraint("trivial_side IN ('left', 'right')", name="ck_responses_trivial_side"),
)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Study:
    id: str
    name: str
    created_at: datetime
    folder: Path
    audit_path: str | None
    config: dict

    @property
    def question(self) -> str:
        return self.config.get("question", "harder")

    @property
    def n_practice(self) -> int:
        return int(self.config["n_practice"])

    @property
    def n_trials(self) -> int:
        return int(self.config["n_trials"])

    @property
    def n_catch(self) -> int:
        return int(self.config.get("n_catch", 0))

    @property
    def n_total(self) -> int:
        return self.n_practice + self.n_trials + self.n_catch

    @property
    def size(self) -> int:
        return int(self.config.get("size", 224))


@dataclass(frozen=True)
class Observer:
    id: int
    study_id: str
    code: str
    ordinal: int
    seed: int
    created_at: datetime
    finished_at: datetime | None

    @property
    def subject(self) -> str:
        """The anonymous name used in exports: subject-01, subject-02, ..."""
        return f"subject-{self.ordinal:02d}"


@dataclass(frozen=True)
class Session:
    id: int
    observer_id: int
    index: int  # 1 for the observer's first session, 2 after the first refresh, ...
    started_at: datetime


@dataclass(frozen=True)
class ScheduledTrial:
    """One trial as an observer sees it. `number` counts within its block (practice or test)."""

    trial_id: int
    position: int
    n_total: int
    kind: str
    number: int
    block_size: int
    left_file: str
    right_file: str
    trivial_side: str
    correct_side: str

    @property
    def feedback(self) -> bool:
        return self.kind == "practice"


@dataclass(frozen=True)
class Recorded:
    """The stored answer to a trial; `created` is False when it had been stored before."""

    response_id: int
    trial_id: int
    position: int
    choice: str
    correct: bool
    correct_side: str
    created: bool
    finished: bool


@dataclass(frozen=True)
class Progress:
    n_answered: int
    n_total: int
    n_practice: int
    n_practice_answered: int
    n_test: int
    n_test_answered: int

    @property
    def finished(self) -> bool:
        return self.n_answered >= self.n_total

    @property
    def in_practice(self) -> bool:
        return self.n_practice_answered < self.n_practice


@dataclass(frozen=True)
class _Trial:
    id: int
    kind: str
    pair_index: int
    trivial_file: str
    impossible_file: str


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _token_hash(token: str) -> str:
    # Tokens are 192-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def observer_link(base_url: str, study_id: str, code: str) -> str:
    """The link an observer opens: BASE/experiment?study=ID&observer=CODE."""
    if not isinstance(base_url, str) or not re.match(r"^https?://[^\s/?#]+", base_url):
        raise StudyError(f"base URL must start with http:// or https:// and a host, got {base_url!r}")
    return f"{base_url.rstrip('/')}/{EXPERIMENT_PAGE}?{urlencode({'study': study_id, 'observer': code})}"


def normalize_code(code: object) -> str:
    """Observer codes are case-insensitive; they are stored upper-case."""
    if not isinstance(code, str) or not CODE_RE.match(code.strip().upper()):
        raise UnknownObserver(
            "this observer code is not valid: codes have 3 to 32 letters, digits, '-' or '_'"
        )
    return code.strip().upper()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# --------------------------------------------------------------------------- the store
class Store:
    """One study database. Thread-safe; share one instance per process (e.g. st.cache_resource).

    Parameters
    ----------
    url : SQLAlchemy URL, e.g. ``sqlite:////path/study.db`` or ``postgresql+psycopg://...``
        (``sqlite://``, in memory, shares one connection: single-threaded tests only)
    busy_timeout_ms : how long a SQLite writer waits for the lock before failing

    The experiment page calls, in this order: `observer_from_link(study, code)` (friendly
    UnknownStudy / UnknownObserver errors), `progress(observer.id).finished` (debrief),
    `start_session(observer.id)` once per page load, then `next_trial`, `image_path` and
    `record_response` per trial. Results pages go through `admin(study_id, token)`.
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._lock = threading.Lock()
        self._trials: dict[str, list[_Trial]] = {}
        self._studies: dict[str, Study] = {}
        self._schedules: dict[int, list[ScheduledTrial]] = {}
        self._session_observer: dict[int, int] = {}
        try:
            self._init_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({public_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ---- transactions
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(ddd_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _init_schema(self) -> None:
        with self._write() as conn:
            if sa.inspect(conn).has_table("schema_version"):
                found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
                if found is not None and found != SCHEMA_VERSION:
                    raise StudyError(
                        f"the study database {public_url(self.url)} has schema version {found}, "
                        f"but this ddd-audit uses version {SCHEMA_VERSION}; use a matching ddd-audit"
                    )
            metadata.create_all(conn, checkfirst=True)
            if conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 0:
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=_now()))

    # ---- studies
    def add_study(
        self,
        design: StudyDesign,
        *,
        name: str,
        folder: str | os.PathLike,
        audit_path: str | os.PathLike | None = None,
    ) -> tuple[Study, str]:
        """Persist a designed study. Returns the study and its admin token (shown once)."""
        token = secrets.token_urlsafe(24)
        created = _now()
        config = json.loads(json.dumps(design.to_json()))
        rows = [
            {
                "kind": p.kind,
                "pair_index": p.pair_index,
                "trivial_image_id": p.trivial_image_id,
                "trivial_label": p.trivial_label,
                "trivial_class": p.trivial_class,
                "trivial_n_correct": p.trivial_n_correct,
                "trivial_file": p.trivial_file,
                "impossible_image_id": p.impossible_image_id,
                "impossible_label": p.impossible_label,
                "impossible_class": p.impossible_class,
                "impossible_n_correct": p.impossible_n_correct,
                "impossible_file": p.impossible_file,
            }
            for p in design.pairs
        ]
        for _ in range(5):
            study_id = secrets.token_hex(6)
            try:
                with self._write() as conn:
                    conn.execute(
                        studies.insert().values(
                            id=study_id,
                            name=name,
                            created_at=created,
                            folder=str(Path(folder).resolve()),
                            audit_path=None if audit_path is None else str(Path(audit_path).resolve()),
                            config=config,
                            admin_token_sha256=_token_hash(token),
                        )
                    )
                    conn.execute(trials.insert(), [{"study_id": study_id, **r} for r in rows])
                break
            except IntegrityError:  # a study id collision: draw another
                continue
        else:  # pragma: no cover
            raise StudyError("could not draw a free study id")
        return self.get_study(study_id), token

    def get_study(self, study_id: object) -> Study:
        """The study with this id; raises UnknownStudy (with a message for people) otherwise."""
        if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
            raise UnknownStudy("this study link is not valid; check the link you were given")
        with self._lock:
            cached = self._studies.get(study_id)
        if cached is not None:
            return cached
        with self._read() as conn:
            row = conn.execute(sa.select(studies).where(studies.c.id == study_id)).mappings().first()
        if row is None:
            raise UnknownStudy("there is no study with this link; check the link you were given")
        config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
        study = Study(
            row["id"], row["name"], row["created_at"], Path(row["folder"]), row["audit_path"], config
        )
        with self._lock:
            self._studies[study_id] = study
        return study

    def list_studies(self) -> list[Study]:
        with self._read() as conn:
            ids = conn.execute(sa.select(studies.c.id).order_by(studies.c.created_at)).scalars().all()
        return [self.get_study(i) for i in ids]

    def check_token(self, study_id: str, token: object) -> bool:
        """True when `token` is the study's admin token (constant-time comparison)."""
        study = self.get_study(study_id)
        with self._read() as conn:
            stored = conn.execute(
                sa.select(studies.c.admin_token_sha256).where(studies.c.id == study.id)
            ).scalar_one()
        if not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(stored, _token_hash(token))

    def admin(self, study_id: str, token: object) -> StudyAdmin:
        """Admin access to one study; raises AccessDenied without the right token."""
        if not isinstance(token, str) or not token:
            raise AccessDenied("an admin token is required for this study")
        if not self.check_token(study_id, token):
            raise AccessDenied("wrong admin token for this study")
        return StudyAdmin(self, self.get_study(study_id))

    def _study_trials(self, study_id: str) -> list[_Trial]:
        with self._lock:
            cached = self._trials.get(study_id)
        if cached is not None:
            return cached
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    trials.c.id,
                    trials.c.kind,
                    trials.c.pair_index,
                    trials.c.trivial_file,
                    trials.c.impossible_file,
                )
                .where(trials.c.study_id == study_id)
                .order_by(trials.c.id)
            ).all()
        result = [_Trial(r.id, r.kind, r.pair_index, r.trivial_file, r.impossible_file) for r in rows]
        with self._lock:
            self._trials[study_id] = result
        return result

    def image_path(self, study: Study, filename: object) -> Path:
        """The stimulus file `filename` of `study`; only the study's own images are served."""
        trials_ = self._study_trials(study.id)
        allowed = {t.trivial_file for t in trials_} | {t.impossible_file for t in trials_}
        if not isinstance(filename, str) or not STIMULUS_FILE_RE.match(filename) or filename not in allowed:
            raise StudyError(f"{filename!r} is not an image of this study")
        folder = (Path(study.folder) / "images").resolve()
        path = (folder / filename).resolve()
        if path.parent != folder:  # pragma: no cover - the pattern already forbids separators
            raise StudyError(f"{filename!r} is not an image of this study")
        return path

    # ---- observers
    def get_observer(self, study_id: object, code: object) -> Observer:
        """The observer with this code in this study; raises UnknownStudy / UnknownObserver."""
        study = self.get_study(study_id)
        code = normalize_code(code)
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(observers).where(observers.c.study_id == study.id, observers.c.code == code)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownObserver("there is no observer with this code in this study; check your link")
        return _observer(row)

    def observer_from_link(self, study_id: object, code: object) -> tuple[Study, Observer]:
        """Both records from a link's query parameters (`study`, `observer`)."""
        return self.get_study(study_id), self.get_observer(study_id, code)

    def _observer_by_id(self, observer_id: int) -> Observer:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(observers).where(observers.c.id == int(observer_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownObserver(f"there is no observer with id {observer_id}")
        return _observer(row)

    # ---- sessions
    def start_session(self, observer_id: int, *, user_agent: str | None = None) -> Session:
        """A new session (page load or refresh) for an observer; it resumes where they stopped."""
        observer = self._observer_by_id(observer_id)
        agent = user_agent[:512] if isinstance(user_agent, str) else None
        with self._write() as conn:
            started = _now()
            session_id = conn.execute(
                sessions.insert().values(observer_id=observer.id, started_at=started, user_agent=agent)
            ).inserted_primary_key[0]
            index = conn.execute(
                sa.select(sa.func.count())
                .select_from(sessions)
                .where(sessions.c.observer_id == observer.id, sessions.c.id <= session_id)
            ).scalar_one()
        with self._lock:
            self._session_observer[int(session_id)] = observer.id
        return Session(int(session_id), observer.id, int(index), started)

    def _observer_of_session(self, session_id: object) -> int:
        try:
            session_id = int(session_id)
        except (TypeError, ValueError):
            raise StudyError(f"session id must be an integer, got {session_id!r}") from None
        with self._lock:
            cached = self._session_observer.get(session_id)
        if cached is not None:
            return cached
        with self._read() as conn:
            observer_id = conn.execute(
                sa.select(sessions.c.observer_id).where(sessions.c.id == session_id)
            ).scalar()
        if observer_id is None:
            raise StudyError(f"there is no session {session_id}; reload the page to start a new one")
        with self._lock:
            self._session_observer[session_id] = int(observer_id)
        return int(observer_id)

    # ---- schedule and progress
    def schedule(self, observer_id: int) -> list[ScheduledTrial]:
        """The observer's whole trial list, in order (practice first); reproducible from the seed."""
        observer_id = int(observer_id)
        with self._lock:
            cached = self._schedules.get(observer_id)
        if cached is not None:
            return cached
        observer = self._observer_by_id(observer_id)
        study = self.get_study(observer.study_id)
        result = build_schedule(self._study_trials(study.id), observer, question=study.question)
        with self._lock:
            self._schedules[observer_id] = result
        return result

    def _n_answered(self, conn: sa.Connection, observer_id: int) -> int:
        return conn.execute(
            sa.select(sa.func.count()).select_from(responses).where(responses.c.observer_id == observer_id)
        ).scalar_one()

    def next_trial(self, observer_id: int) -> ScheduledTrial | None:
        """The observer's first unanswered trial, or None when they have finished."""
        schedule = self.schedule(observer_id)
        with self._read() as conn:
            n = self._n_answered(conn, int(observer_id))
        return schedule[n] if n < len(schedule) else None

    def progress(self, observer_id: int) -> Progress:
        schedule = self.schedule(observer_id)
        with self._read() as conn:
            n = self._n_answered(conn, int(observer_id))
        n_practice = sum(t.kind == "practice" for t in schedule)
        return Progress(
            n,
            len(schedule),
            n_practice,
            min(n, n_practice),
            len(schedule) - n_practice,
            max(0, n - n_practice),
        )

    def is_finished(self, observer_id: int) -> bool:
        return self.progress(observer_id).finished

    # ---- responses
    def record_response(
        self,
        session_id: int,
        trial_id: int,
        choice: str,
        *,
        rt_ms: float | None = None,
        rt_source: str | None = None,
        shown_at: datetime | None = None,
    ) -> Recorded:
        """Store one answer and commit it before returning. Idempotent per (observer, trial).

        Parameters
        ----------
        choice : "left" or "right", the image the observer picked
        rt_ms : response time measured in the browser (rt_source "client" unless given)
        shown_at : when the server showed the trial (aware datetime); without rt_ms the response
            time is answered_at - shown_at and rt_source is "server"

        A trial that was answered before (double click, repeated submit, refresh) returns the stored
        answer with `created=False` and changes nothing. Only the observer's next trial can be
        answered; any other trial raises StudyError.
        """
        if choice not in SIDES:
            raise StudyError(f"choice must be 'left' or 'right', got {choice!r}")
        try:
            trial_id = int(trial_id)
        except (TypeError, ValueError):
            raise StudyError(f"trial id must be an integer, got {trial_id!r}") from None
        rt_ms, rt_source = _check_rt(rt_ms, rt_source, shown_at)
        observer_id = self._observer_of_session(session_id)
        schedule = self.schedule(observer_id)
        by_trial = {t.trial_id: t for t in schedule}
        if trial_id not in by_trial:
            raise StudyError(f"trial {trial_id} is not part of this observer's study")
        scheduled = by_trial[trial_id]
        try:
            with self._write() as conn:
                existing = self._existing(conn, observer_id, trial_id, scheduled, len(schedule))
                if existing is not None:
                    return existing
                n = self._n_answered(conn, observer_id)
                if n >= len(schedule) or schedule[n].trial_id != trial_id:
                    # Under READ COMMITTED (PostgreSQL) a concurrent submit of this very trial may
                    # have committed between the two queries above: then it is a repeat, not an error.
                    existing = self._existing(conn, observer_id, trial_id, scheduled, len(schedule))
                    if existing is not None:
                        return existing
                    if n >= len(schedule):
                        raise StudyError("this observer has finished all trials")
                    raise StudyError(
                        f"trial {trial_id} is not the next trial (position {scheduled.position}, "
                        f"next is {n}); reload the page"
                    )
                answered = _now()
                if rt_ms is None and shown_at is not None:
                    rt_ms = (answered - shown_at).total_seconds() * 1000.0
                    rt_ms, rt_source = (rt_ms, "server") if rt_ms >= 0 else (None, None)
                correct = choice == scheduled.correct_side
                response_id = conn.execute(
                    responses.insert().values(
                        observer_id=observer_id,
                        session_id=int(session_id),
                        trial_id=trial_id,
                        position=scheduled.position,
                        trivial_side=scheduled.trivial_side,
                        choice=choice,
                        correct=correct,
                        rt_ms=rt_ms,
                        rt_source=rt_source,
                        shown_at=shown_at,
                        answered_at=answered,
                    )
                ).inserted_primary_key[0]
                finished = scheduled.position == len(schedule) - 1
                if finished:
                    conn.execute(
                        observers.update().where(observers.c.id == observer_id).values(finished_at=answered)
                    )
        except IntegrityError:
            # Another submit of the same trial won the race (possible on PostgreSQL).
            with self._read() as conn:
                existing = self._existing(conn, observer_id, trial_id, scheduled, len(schedule))
            if existing is None:
                raise
            return existing
        return Recorded(
            int(response_id),
            trial_id,
            scheduled.position,
            choice,
            correct,
            scheduled.correct_side,
            True,
            finished,
        )

    def _existing(self, conn, observer_id: int, trial_id: int, scheduled: ScheduledTrial, n_total: int):
        row = conn.execute(
            sa.select(responses.c.id, responses.c.choice, responses.c.correct).where(
                responses.c.observer_id == observer_id, responses.c.trial_id == trial_id
            )
        ).first()
        if row is None:
            return None
        finished = self._n_answered(conn, observer_id) >= n_total
        return Recorded(
            int(row.id),
            trial_id,
            scheduled.position,
            row.choice,
            bool(row.correct),
            scheduled.correct_side,
            False,
            finished,
        )


def _check_rt(rt_ms, rt_source, shown_at):
    if shown_at is not None and (not isinstance(shown_at, datetime) or shown_at.tzinfo is None):
        raise StudyError("shown_at must be a timezone-aware datetime")
    if rt_ms is None:
        if rt_source not in (None, "server"):
            raise StudyError("rt_source without rt_ms makes no sense; pass rt_ms or shown_at")
        return None, None
    if isinstance(rt_ms, bool) or not isinstance(rt_ms, int | float):
        raise StudyError(f"rt_ms must be a number of milliseconds, got {rt_ms!r}")
    rt_ms = float(rt_ms)
    if not math.isfinite(rt_ms) or not 0 <= rt_ms <= MAX_RT_MS:
        raise StudyError(f"rt_ms must be between 0 and {MAX_RT_MS:.0f}, got {rt_ms!r}")
    rt_source = rt_source or "client"
    if rt_source not in RT_SOURCES:
        raise StudyError(f"rt_source must be one of {RT_SOURCES}, got {rt_source!r}")
    return rt_ms, rt_source


def _observer(row) -> Observer:
    return Observer(
        int(row["id"]),
        row["study_id"],
        row["code"],
        int(row["ordinal"]),
        int(row["seed"]),
        row["created_at"],
        row["finished_at"],
    )


def build_schedule(
    trial_rows: Iterable, observer: Observer, *, question: str = "harder"
) -> list[ScheduledTrial]:
    """An observer's trials in order, from the study's trial rows and the observer's seed.

    The odd left/right trial (with an odd count) goes left for odd ordinals and right for even
    ones, so consecutive observers balance each other.
    """
    rows = list(trial_rows)
    by_key = {(r.kind, int(r.pair_index)): r for r in rows}
    items = observer_schedule(rows, observer.seed, odd_side="left" if observer.ordinal % 2 else "right")
    n_total = len(items)
    n_practice = sum(i.kind == "practice" for i in items)
    out = []
    for item in items:
        row = by_key[(item.kind, item.pair_index)]
        trivial_left = item.trivial_side == "left"
        impossible_side = "right" if trivial_left else "left"
        practice = item.kind == "practice"
        out.append(
            ScheduledTrial(
                trial_id=int(row.id),
                position=item.position,
                n_total=n_total,
                kind=item.kind,
                number=item.position + 1 if practice else item.position + 1 - n_practice,
                block_size=n_practice if practice else n_total - n_practice,
                left_file=row.trivial_file if trivial_left else row.impossible_file,
                right_file=row.impossible_file if trivial_left else row.trivial_file,
                trivial_side=item.trivial_side,
                correct_side=impossible_side if question == "harder" else item.trivial_side,
            )
        )
    return out


# --------------------------------------------------------------------------- admin
class StudyAdmin:
    """What the admin token unlocks: observers and every response of one study."""

    def __init__(self, store: Store, study: Study):
        self.store = store
        self.study = study

    def __repr__(self) -> str:
        return f"StudyAdmin({self.study.id!r})"

    def add_observers(self, n: int = 0, *, codes: Iterable[str] = ()) -> list[Observer]:
        """Create `n` observers with random codes plus one per given code; returns them."""
        codes = [normalize_code(c) for c in codes]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10000:
            raise StudyError(f"the number of observers must be from 0 to 10000, got {n!r}")
        if len(set(codes)) != len(codes):
            raise StudyError("the same observer code is given twice")
        seed = int(self.study.config["seed"])
        for _ in range(5):
            new_codes = codes + [_new_code() for _ in range(n)]
            try:
                with self.store._write() as conn:
                    taken = set(
                        conn.execute(
                            sa.select(observers.c.code).where(
                                observers.c.study_id == self.study.id, observers.c.code.in_(new_codes)
                            )
                        ).scalars()
                    )
                    clash = taken & set(codes)
                    if clash:
                        raise StudyError(
                            f"observer code(s) {', '.join(sorted(clash))} already exist in this study"
                        )
                    if taken:  # a random code collided: draw again
                        continue
                    start = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(observers.c.ordinal), 0)).where(
                            observers.c.study_id == self.study.id
                        )
                    ).scalar_one()
                    created = _now()
                    rows = [
                        {
                            "study_id": self.study.id,
                            "code": code,
                            "ordinal": start + k + 1,
                            "seed": derive_seed(seed, "observer", start + k + 1),
                            "created_at": created,
                        }
                        for k, code in enumerate(new_codes)
                    ]
                    if rows:
                        conn.execute(observers.insert(), rows)
                break
            except IntegrityError:  # a concurrent add took the same ordinal or code: retry
                continue
        else:  # pragma: no cover
            raise StudyError("could not add observers; try again")
        return [self.store.get_observer(self.study.id, c) for c in new_codes]

    def observers(self) -> list[Observer]:
        with self.store._read() as conn:
            rows = (
                conn.execute(
                    sa.select(observers)
                    .where(observers.c.study_id == self.study.id)
                    .order_by(observers.c.ordinal)
                )
                .mappings()
                .all()
            )
        return [_observer(r) for r in rows]

    def responses_frame(self):
        """Every response of the study, one row per answered trial, with its trial and observer.

        Columns: subj, code, observer_id, ordinal, seed, session_id, session_index, response_id,
        trial_id, kind, pair_index, position, number, trivial_side, choice, correct, rt_ms,
        rt_source, shown_at, answered_at, chosen_category, correct_category, left_file,
        right_file, trivial_*/impossible_* (image_id, label, class, n_correct, file).
        """
        import pandas as pd

        r, t, o = responses, trials, observers
        query = (
            sa.select(
                o.c.ordinal,
                o.c.code,
                o.c.seed,
                r.c.observer_id,
                r.c.session_id,
                r.c.id.label("response_id"),
                r.c.trial_id,
                t.c.kind,
                t.c.pair_index,
                r.c.position,
                r.c.trivial_side,
                r.c.choice,
                r.c.correct,
                r.c.rt_ms,
                r.c.rt_source,
                r.c.shown_at,
                r.c.answered_at,
                t.c.trivial_image_id,
                t.c.trivial_label,
                t.c.trivial_class,
                t.c.trivial_n_correct,
                t.c.trivial_file,
                t.c.impossible_image_id,
                t.c.impossible_label,
                t.c.impossible_class,
                t.c.impossible_n_correct,
                t.c.impossible_file,
            )
            .select_from(r.join(o, r.c.observer_id == o.c.id).join(t, r.c.trial_id == t.c.id))
            .where(o.c.study_id == self.study.id)
            .order_by(o.c.ordinal, r.c.position)
        )
        session_query = (
            sa.select(sessions.c.id, sessions.c.observer_id)
            .select_from(sessions.join(o, sessions.c.observer_id == o.c.id))
            .where(o.c.study_id == self.study.id)
            .order_by(sessions.c.id)
        )
        with self.store._read() as conn:
            frame = pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )
            sess = pd.DataFrame(conn.execute(session_query).all(), columns=["session_id", "observer_id"])
        sess["session_index"] = sess.groupby("observer_id").cumcount() + 1
        frame = frame.merge(sess[["session_id", "session_index"]], on="session_id", how="left")
        frame.insert(0, "subj", [f"subject-{k:02d}" for k in frame["ordinal"]])
        n_practice = self.study.n_practice
        frame["number"] = [
            p + 1 if k == "practice" else p + 1 - n_practice
            for k, p in zip(frame["kind"], frame["position"], strict=True)
        ]
        trivial_left = frame["trivial_side"] == "left"
        frame["left_file"] = frame["trivial_file"].where(trivial_left, frame["impossible_file"])
        frame["right_file"] = frame["impossible_file"].where(trivial_left, frame["trivial_file"])
        chose_trivial = frame["choice"] == frame["trivial_side"]
        frame["chosen_category"] = pd.Series("impossible", index=frame.index).where(~chose_trivial, "trivial")
        frame["correct_category"] = "impossible" if self.study.question == "harder" else "trivial"
        frame["correct"] = frame["correct"].astype(bool)
        frame["rt_ms"] = frame["rt_ms"].astype(float)
        return frame

    def sessions_frame(self):
        import pandas as pd

        query = (
            sa.select(
                sessions.c.id.label("session_id"),
                observers.c.ordinal,
                sessions.c.started_at,
                sessions.c.user_agent,
            )
            .select_from(sessions.join(observers, sessions.c.observer_id == observers.c.id))
            .where(observers.c.study_id == self.study.id)
            .order_by(sessions.c.id)
        )
        with self.store._read() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )


# --------------------------------------------------------------------------- study folders
def read_study_json(folder: str | os.PathLike) -> dict:
    folder = Path(folder)
    path = folder / "study.json"
    if not path.is_file():
        raise StudyError(
            f"{folder} is not a study folder (no study.json); create one with `ddd-audit study create`"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StudyError(f"cannot read {path}: {err}") from None
    if not isinstance(info, dict) or info.get("format") != STUDY_FORMAT:
        raise StudyError(f"{path} is not a ddd-audit study file (expected format {STUDY_FORMAT!r})")
    return info


def open_study_dir(folder: str | os.PathLike, *, db_url: str | None = None) -> tuple[Store, Study]:
    """Open the database of the study in `folder` (its study.json says where it lives).

    `db_url` overrides the stored URL, which is needed when that URL had a password (it is
    stored masked). The returned study's `folder` is the folder opened here.
    """
    folder = Path(folder).resolve()
    info = read_study_json(folder)
    database = info.get("database") or DEFAULT_DB_NAME
    if db_url is None:
        if "://" in database:
            if "***" in database:
                raise StudyError(
                    f"the study database is {database}; its password is not stored, so pass the full URL with --db"
                )
            db_url = database
        else:
            db_url = sqlite_url(folder / database)
            if not (folder / database).is_file():
                raise StudyError(f"the study database {folder / database} is missing")
    store = Store(db_url)
    try:
        study = store.get_study(info.get("study_id"))
    except StudyError:
        store.close()
        raise StudyError(
            f"the database {public_url(db_url)} holds no study {info.get('study_id')!r}"
        ) from None
    study = replace(study, folder=folder)
    with store._lock:
        store._studies[study.id] = study
    return store, study


__all__ = [
    "KINDS",
    "AccessDenied",
    "Observer",
    "Progress",
    "Recorded",
    "ScheduledTrial",
    "Session",
    "Store",
    "Study",
    "StudyAdmin",
    "StudyError",
    "UnknownObserver",
    "UnknownStudy",
    "build_schedule",
    "make_engine",
    "observer_link",
    "open_study_dir",
    "sqlite_url",
]
