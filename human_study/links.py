"""Study ids, observer codes and the observer's link (BASE/experiment?study=ID&observer=CODE):
their formats, how a link is built, and how a visited link is read, with the ids a recruiting
service (Prolific-style PROLIFIC_PID, STUDY_ID, SESSION_ID) adds to it. Pure; no database.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from human_study.errors import StudyError, UnknownObserver, UnknownStudy

EXPERIMENT_PAGE = "experiment"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud and typed
CODE_LENGTH = 8
STUDY_ID_RE = re.compile(r"^[0-9a-f]{12}$")
CODE_RE = re.compile(r"^[A-Z0-9_-]{3,32}$")
#: our name -> the URL parameter a recruiting service fills in (Prolific's names)
RECRUITMENT_PARAMS = {"participant_id": "PROLIFIC_PID", "study_id": "STUDY_ID", "session_id": "SESSION_ID"}
RECRUITMENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


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


def new_code() -> str:
    """A random observer code of CODE_LENGTH characters from CODE_ALPHABET."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def study_param(query: Mapping[str, list[str]]) -> str:
    """The study id of a link's query parameters; raises UnknownStudy (for people) otherwise."""
    studies = list(query.get("study") or [])
    if len(studies) != 1 or not isinstance(studies[0], str) or len(studies[0]) > 64:
        raise UnknownStudy(
            "this page needs a study link (…/experiment?study=…&observer=…); open the link you were given"
        )
    study_id = studies[0].strip().lower()
    if not STUDY_ID_RE.match(study_id):
        raise UnknownStudy("this study link is not valid; check the link you were given")
    return study_id


def link_params(query: Mapping[str, list[str]]) -> tuple[str, str]:
    """(study id, observer code) from the link's query parameters, each given exactly once.

    `query` maps a parameter name to all its values (`st.query_params.get_all`). Raises
    UnknownStudy or UnknownObserver, with a message for people, on anything else.
    """
    study_id, codes = study_param(query), list(query.get("observer") or [])
    if len(codes) != 1 or not isinstance(codes[0], str) or len(codes[0]) > 64:
        raise UnknownObserver("this link has no observer code; open the personal link you were given")
    return study_id, normalize_code(codes[0])


def server_base_url(page_url: object) -> str | None:
    """scheme://host:port of the page's own URL (for observer links), or None."""
    if not isinstance(page_url, str):
        return None
    parts = urlsplit(page_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def recruitment_params(query: Mapping[str, list[str]]) -> dict[str, str]:
    """The recruiting service's ids in a visited link ({"participant_id": ..., ...}); a parameter
    that is missing, repeated or not 1-128 letters, digits, '.', '-' or '_' is left out."""
    found = {}
    for name, param in RECRUITMENT_PARAMS.items():
        values = list(query.get(param) or [])
        if len(values) == 1 and isinstance(values[0], str) and RECRUITMENT_ID_RE.match(values[0].strip()):
            found[name] = values[0].strip()
    return found


def recruitment_link(base_url: str, study_id: str) -> str:
    """The one link a recruiting service gives every participant; it fills in the placeholders,
    and each participant id gets its own observer (studies made with open enrolment)."""
    link = observer_link(base_url, study_id, "CODE").split("&observer=")[0]
    return link + "".join(f"&{p}={{{{%{p}%}}}}" for p in RECRUITMENT_PARAMS.values())
