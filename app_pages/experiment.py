"""The 2AFC experiment an observer opens through a link: ?study=ID&observer=CODE.

UI only: human_study.experiment picks the screen and commits answers, app_pages._study finds
and opens the study. The next trial always comes from the database, so each answer is stored
before the next is shown.
"""

from __future__ import annotations

import streamlit as st

from app_pages import _study
from app_pages._rt_component import response_listener
from human_study import experiment as xp
from human_study.errors import StudyError, is_database_error
from human_study.folder import find_study_folder
from human_study.links import link_params

VISIT_KEY = "xp_visit"
CHOICE_KEYS = {"left": "xp_choose_left", "right": "xp_choose_right"}


def load_visit():
    """(store, study, visit) of this page load; raises StudyError with a message for people."""
    query = {name: st.query_params.get_all(name) for name in ("study", "observer")}
    study_id, code = link_params(query)
    folder = find_study_folder(study_id, _study.app_study_roots())
    store, study = _study.open_study_for_observer(folder)
    visit = st.session_state.get(VISIT_KEY)
    if visit is None or (visit.study_id, visit.code) != (study.id, code):
        visit = xp.start_visit(store, study, code, user_agent=st.context.headers.get("User-Agent"))
        st.session_state[VISIT_KEY] = visit
    return store, study, visit


def set_flags(visit, **flags) -> None:
    for name, value in flags.items():
        setattr(visit, name, value)


def answer(store, visit, trial_id: int, choice: str) -> None:
    xp.submit_answer(store, visit, trial_id, choice)


def answer_from_browser(store, visit, trial_id: int, key: str) -> None:
    state = st.session_state.get(key)
    parsed = xp.client_response(state.get("response") if state else None, trial_id)
    if parsed is None:
        visit.attempt += 1  # not a usable message: let the browser send a new answer
        return
    xp.submit_answer(store, visit, trial_id, parsed[0], rt_ms=parsed[1])


def show_pair(store, study, left_file, right_file, trial_id, *, highlight=None):
    columns = st.columns(2)
    for column, side, filename in zip(columns, ("left", "right"), (left_file, right_file), strict=True):
        with column:
            mark = None if highlight is None else highlight == side
            st.html(xp.stimulus_html(store, study, filename, side=side, trial_id=trial_id, highlight=mark))
    return columns


def trial_screen(store, study, visit) -> None:
    trial = store.next_trial(visit.observer_id)
    if trial is None:  # the last trial was just answered in another tab
        st.markdown(xp.debrief_text(study))
        return
    xp.mark_shown(visit, trial)
    fraction, label = xp.progress_label(trial)
    st.progress(fraction, text=label)
    st.markdown(f"**{xp.question_text(study)}**")
    columns = show_pair(store, study, trial.left_file, trial.right_file, trial.trial_id)
    for column, side, label in zip(columns, ("left", "right"), ("Left", "Right"), strict=True):
        with column:
            st.button(
                label,
                key=CHOICE_KEYS[side],
                shortcut=label,
                width="stretch",
                on_click=answer,
                args=(store, visit, trial.trial_id, side),
            )
    st.caption("Answer with the ← and → arrow keys, or click a button.")
    key = f"xp_rt_{trial.trial_id}"
    response_listener(
        key=key,
        trial_id=trial.trial_id,
        buttons=CHOICE_KEYS,
        on_response=lambda: answer_from_browser(store, visit, trial.trial_id, key),
        attempt=visit.attempt,
    )


def feedback_screen(store, study, visit) -> None:
    feedback = visit.feedback
    correct, message = xp.feedback_text(feedback, study)
    (st.success if correct else st.error)(message)
    show_pair(
        store,
        study,
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


def text_screen(study, visit, progress, screen: str, every: int) -> None:
    """Every screen but the trial and the feedback: some text and one button."""
    if screen == "consent":
        st.markdown(xp.consent_text(study, every=every))
        st.button(
            "I agree",
            key="xp_consent",
            type="primary",
            on_click=set_flags,
            args=(visit,),
            kwargs={"consented": True},
        )  # no shortcut: consent takes a deliberate click
        return
    if screen == "debrief":
        st.markdown(xp.debrief_text(study))
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
        st.markdown(
            f"### Welcome back\nYou have answered {progress.n_answered} of {progress.n_total} "
            "trials; you continue where you stopped."
        )
        st.markdown(f"**{xp.question_text(study)}** Answer with the ← and → arrow keys, or click a button.")
        label, key, flags = "Continue", "xp_resume", {"resumed": True}
    st.button(
        label, key=key, type="primary", shortcut="Enter", on_click=set_flags, args=(visit,), kwargs=flags
    )


def show(store, study, visit) -> None:
    progress = store.progress(visit.observer_id)
    every = xp.break_every(study)
    screen = xp.next_screen(progress, visit, every=every)
    with st.container(key="xp_stage", width=xp.stage_width(study)):
        if screen == "trial":
            if visit.notice:
                st.warning(visit.notice)
            trial_screen(store, study, visit)
        elif screen == "feedback":
            feedback_screen(store, study, visit)
        else:
            text_screen(study, visit, progress, screen, every)


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
