"""The 2AFC experiment an observer opens through a link: ?study=ID&observer=CODE (or, with
open enrolment, a recruiting service's ?study=ID&PROLIFIC_PID=...).

UI only: human_study.experiment picks the screen and commits answers, audit_app._study finds
and opens the study, and the trial player (audit_app._rt_component) runs each trial in the
browser. The next trial always comes from the database, so each answer is stored before the
next is shown.
"""

from __future__ import annotations

import streamlit as st

from audit_app import _study
from audit_app._rt_component import KEY as PLAYER_KEY
from audit_app._rt_component import trial_player
from human_study import experiment as xp
from human_study.design import study_setting
from human_study.errors import StudyError, UnknownObserver, is_database_error
from human_study.folder import find_study_folder
from human_study.links import link_params, recruitment_params, study_param

VISIT_KEY = "xp_visit"
QUERY_NAMES = ("study", "observer", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID")


def observer_code(store, study_id: str, query: dict) -> tuple[str, dict]:
    """(observer code, recruiting ids) of the link: its own code, or the observer enrolled for
    the recruiting service's participant id when the study has open enrolment."""
    recruitment = recruitment_params(query)
    try:
        return link_params(query)[1], recruitment
    except UnknownObserver:
        if query.get("observer") or "participant_id" not in recruitment:
            raise
        return store.enrol(study_id, recruitment["participant_id"]).code, recruitment


def load_visit():
    """(store, study, visit) of this page load; raises StudyError with a message for people."""
    query = {name: st.query_params.get_all(name) for name in QUERY_NAMES}
    study_id = study_param(query)
    folder = find_study_folder(study_id, _study.app_study_roots())
    store, study = _study.open_study_for_observer(folder)
    visit = st.session_state.get(VISIT_KEY)
    if visit is None or visit.study_id != study.id or visit.code != _link_code(query):
        code, recruitment = observer_code(store, study.id, query)
        visit = xp.start_visit(
            store, study, code, user_agent=st.context.headers.get("User-Agent"), recruitment=recruitment
        )
        st.session_state[VISIT_KEY] = visit
    return store, study, visit


def _link_code(query: dict) -> str | None:
    """The observer code of a link that has one (codes are case-insensitive)."""
    codes = query.get("observer") or []
    return codes[0].strip().upper() if len(codes) == 1 and isinstance(codes[0], str) else None


def set_flags(visit, **flags) -> None:
    for name, value in flags.items():
        setattr(visit, name, value)


def answer_from_browser(store, visit, trial_id: int) -> None:
    state = st.session_state.get(PLAYER_KEY)
    payload = state.get("response") if state else None
    parsed = xp.client_response(payload, trial_id)
    if parsed is None:
        visit.attempt += 1  # not a usable message: let the browser send a new answer
        return
    xp.submit_answer(store, visit, trial_id, parsed[0], rt_ms=parsed[1], phases=xp.client_phases(payload),
                     refresh_ms=xp.client_refresh(payload))


def show_pair(store, study, visit, left_file, right_file, trial_id, *, highlight=None):
    columns = st.columns(2)
    size = xp.stimulus_size(study, visit)
    for column, side, filename in zip(columns, ("left", "right"), (left_file, right_file), strict=True):
        with column:
            mark = None if highlight is None else highlight == side
            st.html(xp.stimulus_html(store, study, filename, side=side, trial_id=trial_id, highlight=mark, size=size))
    return columns


def trial_screen(store, study, visit) -> None:
    trial = store.next_trial(visit.observer_id)
    if trial is None:  # the last trial was just answered in another tab
        st.markdown(xp.debrief_text(study))
        return
    xp.mark_shown(visit, trial)
    data = xp.trial_data(store, study, trial, size=xp.stimulus_size(study, visit), attempt=visit.attempt,
                         upcoming=store.upcoming_trials(visit.observer_id))
    trial_player(data=data, on_response=lambda: answer_from_browser(store, visit, trial.trial_id))


def calibration_screen(store, study, visit) -> None:
    """The one-time display calibration: a credit card on screen, and the viewing distance."""
    st.markdown(
        "### Screen size\nHold a bank card (or any card of that size) flat against the screen "
        "over the blue card below, and move the slider until both are the same width."
    )
    width = st.slider("Card width on screen", 150, 1200, 320, key="xp_card_width", format="%d px")
    st.html(xp.calibration_card_html(width))
    distance = st.number_input(
        "How far are your eyes from the screen (cm)?",
        min_value=20.0,
        max_value=300.0,
        value=float(study_setting(study, "viewing_distance_cm")),
        step=1.0,
        key="xp_distance_cm",
    )
    st.caption("Sit as you will during the experiment; an arm's length is about 50-60 cm.")
    st.button(
        "Done", key="xp_calibrated", type="primary", on_click=calibrate, args=(store, visit, width, distance)
    )


def calibrate(store, visit, width: int, distance_cm: float) -> None:
    calibration = xp.calibration_from_card(st.session_state.get("xp_card_width", width),
                                           st.session_state.get("xp_distance_cm", distance_cm))
    store.set_calibration(visit.session_id, calibration)
    visit.calibration = calibration


def feedback_screen(store, study, visit) -> None:
    feedback = visit.feedback
    correct, message = xp.feedback_text(feedback, study)
    (st.success if correct else st.error)(message)
    show_pair(
        store,
        study,
        visit,
        feedback["left_file"],
        feedback["right_file"],
        feedback["trial_id"],
        highlight=feedback["correct_side"],
    )
    st.caption("The green frame marks the right answer.")
    st.button(
        "Continue",
        key="xp_next",
        type="primary",
        shortcut="Enter",
        on_click=set_flags,
        args=(visit,),
        kwargs={"feedback": None},
    )


def debrief_screen(study, progress) -> None:
    """The debrief, with the completion code and the way back to a recruiting service."""
    st.markdown(xp.debrief_text(study, ended=progress.ended))
    code = xp.completion_text(study)
    if code:
        st.markdown(code)
    redirect = study_setting(study, "redirect_url")
    if redirect:
        st.link_button("Return to the study's website", redirect, type="primary")


def text_screen(store, study, visit, progress, screen: str, every: int) -> None:
    """Every screen but the trial and the feedback: some text and one button."""
    if screen == "consent":
        st.markdown(xp.consent_text(study, every=every))
        st.button(
            "I agree",
            key="xp_consent",
            type="primary",
            on_click=xp.give_consent,
            args=(store, visit),
        )  # no shortcut: consent takes a deliberate click
        return
    if screen == "debrief":
        debrief_screen(study, progress)
        return
    if screen == "instructions":
        st.markdown(xp.instructions_text(study, every=every))
        label, key, flags = (
            ("Start the practice" if study.n_practice else "Start"),
            "xp_start",
            {"instructed": True},
        )
    elif screen == "practice_done":
        st.markdown("### Practice done\nNow the main part begins. From here on there is **no feedback**.")
        st.markdown(f"**{xp.question_text(study)}**")
        label, key, flags = "Start the main part", "xp_begin", {"test_started": True, "resumed": True}
    elif screen == "break":
        done, total = progress.n_test_answered, progress.n_test
        st.markdown(
            f"### Time for a short break\nYou have done {done} of {total} trials. "
            "Rest your eyes for a moment, then continue when you are ready."
        )
        st.progress(done / total, text=f"{done} of {total} trials")
        label, key, flags = "Continue", "xp_resume_break", {"break_done_at": done, "resumed": True}
    else:  # welcome_back
        st.markdown(f"### Welcome back\n{xp.welcome_back_text(progress)}")
        st.markdown(f"**{xp.question_text(study)}** Answer with the ← and → arrow keys, or click an image.")
        label, key, flags = "Continue", "xp_resume", {"resumed": True}
    st.button(
        label, key=key, type="primary", shortcut="Enter", on_click=set_flags, args=(visit,), kwargs=flags
    )


def show(store, study, visit) -> None:
    progress = store.progress(visit.observer_id)
    every = xp.break_every(study)
    screen = xp.next_screen(progress, visit, every=every)
    st.html(f"<style>{xp.page_css(study)}</style>")
    with st.container(key="xp_stage", width=xp.stage_width(study, xp.stimulus_size(study, visit))):
        if screen == "trial":
            if visit.notice:
                st.warning(visit.notice)
            trial_screen(store, study, visit)
        elif screen == "feedback":
            feedback_screen(store, study, visit)
        elif screen == "calibration":
            calibration_screen(store, study, visit)
        else:
            text_screen(store, study, visit, progress, screen, every)


def main() -> None:
    # One centred column of a fixed width, whatever the app's layout: the two images stay close.
    with st.container(key="xp_page", horizontal_alignment="center"):
        try:
            show(*load_visit())
        except StudyError as err:
            st.error(f"Sorry, {err}.", icon=":material/link_off:")
        except Exception as err:
            if not is_database_error(err):
                raise
            st.error(xp.DATABASE_DOWN, icon=":material/cloud_off:")


main()
