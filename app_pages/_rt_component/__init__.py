"""A Streamlit v2 custom component that times 2AFC responses in the browser (no UI of its own).

`response_listener(...)` mounts it; it reports the first ArrowLeft/ArrowRight key or click on
a choice button with its performance.now() response time from the moment both images were
displayed. Registration happens on first use (cached like the app's other resources), never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import streamlit as st

COMPONENT_NAME = "ddd_audit.response_listener"
EVENT = "response"


@cache
def _javascript() -> str:
    return resources.files(__package__).joinpath("listener.js").read_text(encoding="utf-8")


@st.cache_resource(show_spinner=False)
def _component():
    return st.components.v2.component(COMPONENT_NAME, js=_javascript(), isolate_styles=False)


def response_listener(
    *,
    key: str,
    trial_id: int,
    buttons: dict[str, str],
    on_response: Callable[[], None],
    attempt: int = 0,
) -> Any:
    """Listen for the answer to trial `trial_id`; `on_response` runs when one arrives.

    buttons : {"left": KEY, "right": KEY}, the `key=`s of the two choice buttons; clicks on them
        are answered with a browser RT (the plain buttons still work when JavaScript fails).
    attempt : bump it to let the observer answer the same trial again (the last answer was not stored).

    Inside `on_response`, `st.session_state[key]["response"]` is the dict
    {"trial_id", "choice", "rt_ms", "via"} sent by the browser (untrusted input: validate it).
    """
    data = {"trial_id": int(trial_id), "buttons": dict(buttons), "attempt": int(attempt)}
    return _component()(key=key, data=data, on_response_change=on_response)


__all__ = ["COMPONENT_NAME", "EVENT", "response_listener"]
