"""Study ids, observer codes and the observer's link (BASE/experiment?study=ID&observer=CODE):
their formats and how a link is built. Pure; no database.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

from human_study.errors import StudyError, UnknownObserver

EXPERIMENT_PAGE = "experiment"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud and typed
CODE_LENGTH = 8
STUDY_ID_RE = re.compile(r"^[0-9a-f]{12}$")
CODE_RE = re.compile(r"^[A-Z0-9_-]{3,32}$")


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

