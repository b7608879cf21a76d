"""The study store: one study database, as an observer's visit uses it.

Looks up studies and observers, starts sessions, hands out each observer's next trial and
commits answers. Each response is committed before `record_response` returns and is stored at
most once per observer and trial. All SQL is parameterised; no UI, no statistics. Tables are in
`schema`, the admin token's side in `admin`, study folders in `folder`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from human_study.admin import StudyAdmin, open_admin, token_matches
from human_study.design import study_setting
from human_study.errors import StudyError, UnknownObserver, UnknownStudy
from human_study.links import RECRUITMENT_ID_RE, RECRUITMENT_PARAMS, STUDY_ID_RE, normalize_code
from human_study.records import (  # check_phases and check_rt are re-exported
    Calibration,
    Observer,
    Progress,
    Recorded,
    ScheduledTrial,
    Session,
    Study,
    check_phases,
)
from human_study.records import check_rt as _check_rt
from human_study.schedule import SIDES, build_schedule
from human_study.schema import (
    BUSY_TIMEOUT_MS,
    create_schema,
    make_engine,
    now,
    observers,
    public_url,
    reading,
    responses,
    sessions,
    studies,
    trials,
    writing,
)
from human_study.stimuli import STIMULUS_FILE_RE


@dataclass(frozen=True)
class _Trial:
    id: int
    kind: str
    pair_index: int
    trivial_file: str
    impossible_file: str


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
        self._adaptive: dict[int, tuple[Study, Observer] | None] = {}
        self._planner = None
        try:
            create_schema(self.engine)
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

    # ---- studies
    def get_study(self, study_id: object) -> Study:
        """The study with this id; raises UnknownStudy (with a message for people) otherwise."""
        if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
            raise UnknownStudy("this study link is not valid; check the link you were given")
        with self._lock:
            cached = self._studies.get(study_id)
        if cached is not None:
            return cached
        with reading(self.engine) as conn:
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
        with reading(self.engine) as conn:
            ids = conn.execute(sa.select(studies.c.id).order_by(studies.c.created_at)).scalars().all()
        return [self.get_study(i) for i in ids]

    def check_token(self, study_id: str, token: object) -> bool:
        """True when `token` is the study's admin token (constant-time comparison)."""
        return token_matches(self, study_id, token)

    def admin(self, study_id: str, token: object) -> StudyAdmin:
        """Admin access to one study; raises AccessDenied without the right token."""
        return open_admin(self, study_id, token)

    def study_at(self, study_id: str, folder: Path) -> Study:
        """The study with its files at `folder`, where it was opened (it may have moved since it was made)."""
        study = replace(self.get_study(study_id), folder=folder)
        with self._lock:
            self._studies[study.id] = study
        return study

    def _study_trials(self, study_id: str) -> list[_Trial]:
        with self._lock:
            cached = self._trials.get(study_id)
        if cached is not None:
            return cached
        with reading(self.engine) as conn:
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
        with reading(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(observers).where(observers.c.study_id == study.id, observers.c.code == code)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownObserver("there is no observer with this code in this study; check your link")
        return Observer.from_row(row)

    def observer_from_link(self, study_id: object, code: object) -> tuple[Study, Observer]:
        """Both records from a link's query parameters (`study`, `observer`)."""
        return self.get_study(study_id), self.get_observer(study_id, code)

    def _observer_by_id(self, observer_id: int) -> Observer:
        with reading(self.engine) as conn:
            row = (
                conn.execute(sa.select(observers).where(observers.c.id == int(observer_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownObserver(f"there is no observer with id {observer_id}")
        return Observer.from_row(row)

    def enrol(self, study_id: object, participant_id: object) -> Observer:
        """The observer of a recruiting service's participant in a study with open enrolment,
        created on their first visit; the same participant id always gets the same observer."""
        study = self.get_study(study_id)
        if not study_setting(study, "open_enrolment"):
            raise UnknownObserver("this link has no observer code; open the personal link you were given")
        if not isinstance(participant_id, str) or not RECRUITMENT_ID_RE.match(participant_id):
            raise UnknownObserver("this link's participant id is not valid; open the link you were given")
        for _ in range(3):
            found = self._participant_observer(study.id, participant_id)
            if found is not None:
                return found
            (made,) = StudyAdmin(self, study).add_observers(1)
            try:
                with writing(self.engine) as conn:
                    conn.execute(
                        observers.update().where(observers.c.id == made.id).values(participant_id=participant_id)
                    )
            except IntegrityError:  # the same participant enrolled at the same moment: drop ours
                with writing(self.engine) as conn:
                    conn.execute(observers.delete().where(observers.c.id == made.id))
        found = self._participant_observer(study.id, participant_id)
        if found is None:  # pragma: no cover
            raise StudyError("could not enrol this participant; reload the page")
        return found

    def _participant_observer(self, study_id: str, participant_id: str) -> Observer | None:
        with reading(self.engine) as conn:
            row = (
                conn.execute(
                    sa.select(observers).where(
                        observers.c.study_id == study_id, observers.c.participant_id == participant_id
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else Observer.from_row(row)

    def record_consent(self, observer_id: int) -> None:
        """Store that the observer agreed to take part (once; a reload does not ask again)."""
        with writing(self.engine) as conn:
            conn.execute(
                observers.update()
                .where(observers.c.id == int(observer_id), observers.c.consented_at.is_(None))
                .values(consented_at=now())
            )

    # ---- sessions
    def start_session(
        self, observer_id: int, *, user_agent: str | None = None, recruitment: dict | None = None
    ) -> Session:
        """A new session (page load or refresh) for an observer; it resumes where they stopped.

        recruitment : the recruiting service's ids from the link (links.recruitment_params); they
            are stored with the session and never exported.
        The observer's last calibration, if any, carries over to the new session.
        """
        observer = self._observer_by_id(observer_id)
        agent = user_agent[:512] if isinstance(user_agent, str) else None
        ids = {
            ("participant_id" if name == "participant_id" else f"recruitment_{name}"): value
            for name, value in (recruitment or {}).items()
            if name in RECRUITMENT_PARAMS and isinstance(value, str) and RECRUITMENT_ID_RE.match(value)
        }
        with writing(self.engine) as conn:
            started = now()
            last = conn.execute(
                sa.select(sessions.c.px_per_mm, sessions.c.viewing_distance_mm)
                .where(sessions.c.observer_id == observer.id, sessions.c.px_per_mm.is_not(None))
                .order_by(sessions.c.id.desc())
                .limit(1)
            ).first()
            calibration = {} if last is None else {"px_per_mm": last[0], "viewing_distance_mm": last[1]}
            session_id = conn.execute(
                sessions.insert().values(
                    observer_id=observer.id, started_at=started, user_agent=agent, **ids, **calibration
                )
            ).inserted_primary_key[0]
            index = conn.execute(
                sa.select(sa.func.count())
                .select_from(sessions)
                .where(sessions.c.observer_id == observer.id, sessions.c.id <= session_id)
            ).scalar_one()
        with self._lock:
            self._session_observer[int(session_id)] = observer.id
        return Session(int(session_id), observer.id, int(index), started)

    def set_calibration(self, session_id: int, calibration: Calibration) -> None:
        """Store the display calibration of a session (see experiment.stimulus_px)."""
        if not (0.5 <= calibration.px_per_mm <= 50 and 150 <= calibration.viewing_distance_mm <= 3000):
            raise StudyError(
                f"calibration out of range: {calibration.px_per_mm!r} px per mm (0.5-50), "
                f"{calibration.viewing_distance_mm!r} mm away (150-3000)"
            )
        self._observer_of_session(session_id)
        with writing(self.engine) as conn:
            conn.execute(
                sessions.update()
                .where(sessions.c.id == int(session_id))
                .values(px_per_mm=float(calibration.px_per_mm), viewing_distance_mm=float(calibration.viewing_distance_mm))
            )

    def set_refresh_interval(self, session_id: int, refresh_ms: object) -> float | None:
        """Store the display's refresh interval (ms per frame) the browser measured in a session; a value
        outside 2-100 ms (500 to 10 Hz) is not a display's and is ignored (None)."""
        if isinstance(refresh_ms, bool) or not isinstance(refresh_ms, int | float) or not 2 <= refresh_ms <= 100:
            return None
        self._observer_of_session(session_id)
        with writing(self.engine) as conn:
            conn.execute(sessions.update().where(sessions.c.id == int(session_id)).values(refresh_ms=float(refresh_ms)))
        return float(refresh_ms)

    def calibration(self, session_id: int) -> Calibration | None:
        """The session's display calibration, or None before the observer calibrated."""
        with reading(self.engine) as conn:
            row = conn.execute(
                sa.select(sessions.c.px_per_mm, sessions.c.viewing_distance_mm).where(sessions.c.id == int(session_id))
            ).first()
        if row is None or row[0] is None:
            return None
        return Calibration(float(row[0]), float(row[1]))

    def _observer_of_session(self, session_id: object) -> int:
        try:
            session_id = int(session_id)
        except (TypeError, ValueError):
            raise StudyError(f"session id must be an integer, got {session_id!r}") from None
        with self._lock:
            cached = self._session_observer.get(session_id)
        if cached is not None:
            return cached
        with reading(self.engine) as conn:
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
        """The observer's whole trial list, in order (practice first); reproducible from the seed. In an
        adaptive study (`adaptive`), the trials answered so far and the next one, replayed from the responses."""
        observer_id = int(observer_id)
        with self._lock:
            cached = self._schedules.get(observer_id)
        if cached is not None:
            return cached
        adaptive = self._adaptive_study(observer_id)
        if adaptive:
            with reading(self.engine) as conn:
                return self.planner().schedule(conn, *adaptive)
        observer = self._observer_by_id(observer_id)
        study = self.get_study(observer.study_id)
        result = build_schedule(self._study_trials(study.id), observer, question=study.question)
        with self._lock:
            self._schedules[observer_id] = result
        return result

    def planner(self):
        """The adaptive studies' planner of this store (`adaptive.AdaptivePlanner`), made on first use."""
        from human_study.adaptive import AdaptivePlanner

        with self._lock:
            self._planner = self._planner or AdaptivePlanner()
            return self._planner

    def _adaptive_study(self, observer_id: int) -> tuple[Study, Observer] | None:
        """(study, observer) when the observer's study has the adaptive design, else None (cached)."""
        with self._lock:
            if observer_id in self._adaptive:
                return self._adaptive[observer_id]
        observer = self._observer_by_id(observer_id)
        study = self.get_study(observer.study_id)
        found = (study, observer) if study_setting(study, "design") == "adaptive" else None
        with self._lock:
            self._adaptive[observer_id] = found
        return found

    def _snapshot(self, observer_id: int) -> tuple[list[ScheduledTrial], int, bool, int, int]:
        """(known schedule, answered, ended, n_total, n_practice) of an observer, from one read."""
        observer_id = int(observer_id)
        adaptive = self._adaptive_study(observer_id)
        schedule = [] if adaptive else self.schedule(observer_id)
        with reading(self.engine) as conn:
            if adaptive:
                schedule = self.planner().schedule(conn, *adaptive)
            n, ended = self._n_answered(conn, observer_id), self._ended(conn, observer_id)
        if adaptive:
            return schedule, n, ended, adaptive[0].n_total, adaptive[0].n_practice
        return schedule, n, ended, len(schedule), sum(t.kind == "practice" for t in schedule)

    def _n_answered(self, conn: sa.Connection, observer_id: int) -> int:
        return conn.execute(
            sa.select(sa.func.count()).select_from(responses).where(responses.c.observer_id == observer_id)
        ).scalar_one()

    def _ended(self, conn: sa.Connection, observer_id: int) -> bool:
        return (
            conn.execute(sa.select(observers.c.ended_reason).where(observers.c.id == observer_id)).scalar()
            is not None
        )

    def next_trial(self, observer_id: int) -> ScheduledTrial | None:
        """The observer's first unanswered trial, or None when they have finished (or were ended)."""
        schedule, n, ended, _, _ = self._snapshot(observer_id)
        return schedule[n] if n < len(schedule) and not ended else None

    def upcoming_trials(self, observer_id: int) -> list[ScheduledTrial]:
        """The trials that can come after the next one (for the browser to preload their images): the one
        after it in a fixed design; in an adaptive one, the trial after each answer to the next."""
        adaptive = self._adaptive_study(int(observer_id))
        if adaptive:
            with reading(self.engine) as conn:
                return self.planner().upcoming(conn, *adaptive)
        schedule, n, ended, _, _ = self._snapshot(observer_id)
        return [] if ended else schedule[n + 1 : n + 2]

    def progress(self, observer_id: int) -> Progress:
        _, n, ended, n_total, n_practice = self._snapshot(observer_id)
        return Progress(n, n_total, n_practice, min(n, n_practice), n_total - n_practice, max(0, n - n_practice), ended)

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
        phases: dict | None = None,
    ) -> Recorded:
        """Store one answer and commit it before returning. Idempotent per (observer, trial).

        Parameters
        ----------
        choice : "left" or "right", the image the observer picked
        rt_ms : response time measured in the browser (rt_source "client" unless given)
        shown_at : when the server showed the trial (aware datetime); without rt_ms the response
            time is answered_at - shown_at and rt_source is "server"
        phases : the trial's phase durations measured in the browser, {name: ms} (check_phases)

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
        phases = check_phases(phases)
        observer_id = self._observer_of_session(session_id)
        schedule = self.schedule(observer_id)
        n_total = self._snapshot_total(observer_id, schedule)
        by_trial = {t.trial_id: t for t in schedule}
        if trial_id not in by_trial:
            raise StudyError(f"trial {trial_id} is not part of this observer's study")
        scheduled = by_trial[trial_id]
        try:
            with writing(self.engine) as conn:
                existing = self._existing(conn, observer_id, trial_id, scheduled, n_total)
                if existing is not None:
                    return existing
                n = self._n_answered(conn, observer_id)
                if n >= len(schedule) or schedule[n].trial_id != trial_id:
                    # Under READ COMMITTED (PostgreSQL) a concurrent submit of this very trial may
                    # have committed between the two queries above: then it is a repeat, not an error.
                    existing = self._existing(conn, observer_id, trial_id, scheduled, n_total)
                    if existing is not None:
                        return existing
                    if n >= n_total:
                        raise StudyError("this observer has finished all trials")
                    raise StudyError(
                        f"trial {trial_id} is not the next trial (position {scheduled.position}, "
                        f"next is {n}); reload the page"
                    )
                answered = now()
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
                        phases=phases,
                    )
                ).inserted_primary_key[0]
                finished = scheduled.position == n_total - 1
                ended = not correct and scheduled.kind == "catch" and self._attention_ends(conn, observer_id)
                if finished or ended:
                    conn.execute(
                        observers.update()
                        .where(observers.c.id == observer_id)
                        .values(finished_at=answered, ended_reason="attention" if ended and not finished else None)
                    )
                    finished = True
        except IntegrityError:
            # Another submit of the same trial won the race (possible on PostgreSQL).
            with reading(self.engine) as conn:
                existing = self._existing(conn, observer_id, trial_id, scheduled, n_total)
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

    def _snapshot_total(self, observer_id: int, schedule: list[ScheduledTrial]) -> int:
        adaptive = self._adaptive_study(observer_id)
        return adaptive[0].n_total if adaptive else len(schedule)

    def _attention_ends(self, conn: sa.Connection, observer_id: int) -> bool:
        """True when the study ends the experiment now: policy "end" and enough failed catch trials."""
        study = self.get_study(self._observer_by_id(observer_id).study_id)
        if study_setting(study, "attention_policy") != "end":
            return False
        failed = conn.execute(
            sa.select(sa.func.count())
            .select_from(responses.join(trials, responses.c.trial_id == trials.c.id))
            .where(responses.c.observer_id == observer_id, trials.c.kind == "catch", responses.c.correct.is_(False))
        ).scalar_one()
        return failed >= int(study_setting(study, "attention_max_failures"))

    def _existing(self, conn, observer_id: int, trial_id: int, scheduled: ScheduledTrial, n_total: int):
        row = conn.execute(
            sa.select(responses.c.id, responses.c.choice, responses.c.correct).where(
                responses.c.observer_id == observer_id, responses.c.trial_id == trial_id
            )
        ).first()
        if row is None:
            return None
        finished = self._n_answered(conn, observer_id) >= n_total or self._ended(conn, observer_id)
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
