"""What the admin token is and unlocks: issuing it with a new study, checking it, and the
study's observers and responses (StudyAdmin).

Only the token's SHA-256 is stored. Functions take the study's `Store` as their first argument.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from human_study.design import StudyDesign
from human_study.errors import AccessDenied, StudyError
from human_study.links import new_code, normalize_code
from human_study.records import PHASES, Observer, Study
from human_study.schedule import derive_seed
from human_study.schema import now, observers, reading, responses, sessions, studies, trials, writing


def token_hash(token: str) -> str:
    # Tokens are 192-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_study(
    store,
    design: StudyDesign,
    *,
    name: str,
    folder: str | os.PathLike,
    audit_path: str | os.PathLike | None = None,
) -> tuple[Study, str]:
    """Persist a designed study. Returns the study and its admin token (shown once)."""
    token = secrets.token_urlsafe(24)
    created = now()
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
            with writing(store.engine) as conn:
                conn.execute(
                    studies.insert().values(
                        id=study_id,
                        name=name,
                        created_at=created,
                        folder=str(Path(folder).resolve()),
                        audit_path=None if audit_path is None else str(Path(audit_path).resolve()),
                        config=config,
                        admin_token_sha256=token_hash(token),
                    )
                )
                conn.execute(trials.insert(), [{"study_id": study_id, **r} for r in rows])
            break
        except IntegrityError:  # a study id collision: draw another
            continue
    else:  # pragma: no cover
        raise StudyError("could not draw a free study id")
    return store.get_study(study_id), token


def normalize_token(token: object) -> str | None:
    """An admin token as entered, without surrounding whitespace; None when there is none.

    The rule, the same for the results page, `--token` and DDD_STUDY_TOKEN: spaces, tabs and newlines
    around a token are dropped, because tokens are pasted from terminals and e-mails that add them; a
    token itself never holds whitespace (it is URL-safe base64), so nothing else is changed or accepted.
    """
    if not isinstance(token, str):
        return None
    return token.strip() or None


def token_matches(store, study_id: str, token: object) -> bool:
    """True when `token` (see `normalize_token`) is the study's admin token (constant-time comparison)."""
    token = normalize_token(token)
    study = store.get_study(study_id)
    with reading(store.engine) as conn:
        stored = conn.execute(
            sa.select(studies.c.admin_token_sha256).where(studies.c.id == study.id)
        ).scalar_one()
    if not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(stored, token_hash(token))


def open_admin(store, study_id: str, token: object) -> StudyAdmin:
    """Admin access to one study; raises AccessDenied without the right token (see `normalize_token`)."""
    token = normalize_token(token)
    if not token:
        raise AccessDenied("an admin token is required for this study")
    if not token_matches(store, study_id, token):
        raise AccessDenied("wrong admin token for this study")
    return StudyAdmin(store, store.get_study(study_id))


class StudyAdmin:
    """What the admin token unlocks: observers and every response of one study."""

    def __init__(self, store, study: Study):
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
            new_codes = codes + [new_code() for _ in range(n)]
            try:
                with writing(self.store.engine) as conn:
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
                    created = now()
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
        with reading(self.store.engine) as conn:
            rows = (
                conn.execute(
                    sa.select(observers)
                    .where(observers.c.study_id == self.study.id)
                    .order_by(observers.c.ordinal)
                )
                .mappings()
                .all()
            )
        return [Observer.from_row(r) for r in rows]

    def response_stamp(self) -> tuple[int, int]:
        """(number of responses, largest response id) of the study: one cheap query that changes whenever
        a response is added or removed, so the results page analyses the responses once per change."""
        r, o = responses, observers
        query = (sa.select(sa.func.count(r.c.id), sa.func.coalesce(sa.func.max(r.c.id), 0))
                 .select_from(r.join(o, r.c.observer_id == o.c.id)).where(o.c.study_id == self.study.id))
        with reading(self.store.engine) as conn:
            n, last = conn.execute(query).one()
        return int(n), int(last)

    def responses_frame(self):
        """Every response of the study, one row per answered trial, with its trial and observer.

        Columns: subj, code, observer_id, ordinal, seed, session_id, session_index, response_id,
        trial_id, kind, pair_index, position, number, trivial_side, choice, correct, rt_ms,
        rt_source, shown_at, answered_at, iti_ms, fixation_ms, stimulus_ms, mask_ms (the phases
        the browser measured), chosen_category, correct_category, left_file,
        right_file, trivial_*/impossible_* (image_id, label, class, n_correct, file). A recruiting
        service's ids stay in the database: they are not among the columns.
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
                r.c.phases,
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
        with reading(self.store.engine) as conn:
            frame = pd.DataFrame.from_records(  # rows as tuples: no dict per row
                conn.execute(query).all(), columns=list(query.selected_columns.keys())
            )
        # The session number counts the observer's sessions that hold answers (1, 2, ...): a
        # reload that answered nothing, or another observer's session, never makes a gap.
        frame["session_index"] = (
            frame.groupby("observer_id")["session_id"].rank(method="dense").astype(int)
            if len(frame)
            else pd.Series(dtype=int)
        )
        for phase in PHASES:
            frame[f"{phase}_ms"] = [
                (p or {}).get(phase) if isinstance(p, dict) else None for p in frame["phases"]
            ]
            frame[f"{phase}_ms"] = frame[f"{phase}_ms"].astype(float)
        frame = frame.drop(columns=["phases"])
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
        if self.study.config.get("design") == "adaptive":  # the gap in mean correctness (adaptive.pair_level)
            gap = frame["trivial_n_correct"].astype(float) - frame["impossible_n_correct"].astype(float)
            frame["level"] = (gap / int(self.study.config["n_models"])).round(9)
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
        with reading(self.store.engine) as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )
