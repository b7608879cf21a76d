"""A Streamlit v2 custom component that runs a whole 2AFC trial in the browser (trial.js):
blank interval, fixation, the pair (with an optional presentation limit and mask), the answer.

`trial_player(...)` mounts it with one trial's data (`human_study.experiment.trial_data`); it
reports the answer with its performance.now() response time and the measured phase durations.
Registration happens on first use (cached like the app's other resources), never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import streamlit as st

COMPONENT_NAME = "ddd_audit.trial_player"
EVENT = "response"
KEY = "xp_trial"  # one key for every trial: the player stays mounted from trial to trial


@cache
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@st.cache_resource(show_spinner=False)
def _component():
    return st.components.v2.component(
        COMPONENT_NAME, js=_asset("trial.js"), css=_asset("trial.css"), isolate_styles=False
    )


def trial_player(*, data: dict, on_response: Callable[[], None], key: str = KEY) -> Any:
    """Run the trial in `data` in the browser; `on_response` runs when the answer arrives.

    Inside `on_response`, `st.session_state[key]["response"]` is the dict
    {"trial_id", "choice", "rt_ms", "via", "phases"} sent by the browser (untrusted input:
    validate it). A new `data["attempt"]` lets the observer answer the same trial again.
    """
    return _component()(key=key, data=data, on_response_change=on_response)


__all__ = ["COMPONENT_NAME", "EVENT", "KEY", "trial_player"]
