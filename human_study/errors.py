"""The errors of a study that people can fix; each message says how."""

from __future__ import annotations


class StudyError(ValueError):
    """A problem with a study, its input or its use that the user can fix (message says how)."""


class UnknownStudy(StudyError):
    """No study with this id (or the id is malformed)."""


class UnknownObserver(StudyError):
    """No observer with this code in this study (or the code is malformed)."""


class AccessDenied(StudyError):
    """The admin token is missing or wrong."""


def is_database_error(err: BaseException) -> bool:
    """True for SQLAlchemy errors: the database is unreachable or locked for too long."""
    return type(err).__module__.startswith("sqlalchemy")
