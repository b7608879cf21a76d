"""The study folder: creating one from an audit (images/, study.json, study.db), opening its
database, and finding study folders on disk by id or by admin token.

study.json is written last and names the study and where its database lives.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from audit.store import AuditResult, write_json
from audit.store import load as load_audit
from human_study.admin import StudyAdmin, add_study, normalize_token
from human_study.design import DesignConfig, StudyDesign, audit_problems, design_study
from human_study.errors import StudyError, UnknownStudy, is_database_error
from human_study.links import STUDY_ID_RE
from human_study.records import Study
from human_study.schedule import derive_seed
from human_study.schema import public_url, sqlite_url
from human_study.stimuli import noise_stimulus, render_stimulus
from human_study.visit import Store

log = logging.getLogger(__name__)

STUDY_FORMAT = "ddd-audit-study/1"
DEFAULT_DB_NAME = "study.db"
STUDY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STUDY_DIRS_ENV = "DDD_STUDY_DIRS"
DEFAULT_STUDY_ROOT = "runs"
# Under each root: the root itself is a study, a folder of studies, an audit, or a folder of audits.
_STUDY_PATTERNS = ("study.json", "*/study.json", "studies/*/study.json", "*/studies/*/study.json")


# --------------------------------------------------------------------------- making a study
def render_study_images(audit: AuditResult, design: StudyDesign, folder: str | os.PathLike) -> list[Path]:
    """Write every stimulus of `design` as PNG into `folder` (usually <study>/images)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = int(design.config.size)
    written: list[Path] = []
    for pair in design.pairs:
        trivial = render_stimulus(audit.image(pair.trivial_image_id), size)
        todo = [(pair.trivial_file, trivial)]
        if pair.impossible_image_id is None:
            seed = derive_seed(design.config.seed, "noise", pair.pair_index)
            todo.append((pair.impossible_file, noise_stimulus(size, seed, mode=trivial.mode)))
        else:
            todo.append((pair.impossible_file, render_stimulus(audit.image(pair.impossible_image_id), size)))
        for name, img in todo:
            path = folder / name
            img.save(path, format="PNG")
            written.append(path)
    return written


@dataclass(frozen=True)
class CreatedStudy:
    """What `create_study` made. `admin_token` is shown once; only its hash is stored."""

    study_id: str
    name: str
    folder: Path
    db_url: str
    admin_token: str
    observer_codes: tuple[str, ...]
    design: StudyDesign = field(repr=False)


def create_study(
    audit_path: str | os.PathLike,
    name: str,
    *,
    config: DesignConfig | None = None,
    db_url: str | None = None,
    studies_root: str | os.PathLike | None = None,
    n_observers: int = 0,
    base_url: str | None = None,
    allow_incomplete: bool = False,
) -> CreatedStudy:
    """Design a study from an audit, render its stimuli and persist it.

    The study folder is `<studies_root>/<name>/` (default `<audit>/studies/<name>/`) with
    `images/*.png`, `study.json` (written last) and, without `db_url`, the SQLite `study.db`.
    `base_url`, the address observers reach the study server at, is kept in study.json for every later
    link (`study_base_url`). An audit that is not complete, or has too few models for its split to mean
    anything (`design.audit_problems`), is refused unless `allow_incomplete`; study.json records the audit's
    state either way. A failure removes the folder again.
    """
    if not isinstance(name, str) or not STUDY_NAME_RE.fullmatch(name) or ".." in name:  # audit.store.safety's rule
        raise StudyError(
            f"study name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit, without "
            f"'..'), got {name!r}"
        )
    if isinstance(n_observers, bool) or not isinstance(n_observers, int) or not 0 <= n_observers <= 10000:
        raise StudyError(f"n_observers must be an integer from 0 to 10000, got {n_observers!r}")
    result = load_audit(audit_path)
    design = design_study(result, config)  # the settings' own errors first
    problems = audit_problems(result, design.config.tolerance)
    if problems and not allow_incomplete:
        raise StudyError(f"{'; '.join(problems)}: observers' time would be spent on a split that says nothing; "
                         "finish the audit first, or pass --allow-incomplete to make the study anyway")
    root = Path(studies_root) if studies_root is not None else Path(audit_path) / "studies"
    folder = (root / name).resolve()
    if folder.exists() and any(folder.iterdir()):
        raise StudyError(f"a study named {name!r} already exists at {folder}; choose another --name")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        render_study_images(result, design, folder / "images")
        url = db_url or sqlite_url(folder / DEFAULT_DB_NAME)
        with Store(url) as store:
            study, token = add_study(store, design, name=name, folder=folder, audit_path=result.path)
            codes = ()
            if n_observers:
                codes = tuple(o.code for o in store.admin(study.id, token).add_observers(n_observers))
        write_json(
            folder / "study.json",
            {
                "format": STUDY_FORMAT,
                "study_id": study.id,
                "name": name,
                "created_at": study.created_at.isoformat(),
                "audit": str(Path(result.path).resolve()),
                "database": DEFAULT_DB_NAME if db_url is None else public_url(url),
                "config": design.to_json(),
                "base_url": base_url,
                "audit_state": {"state": result.state, "n_models": result.n_models, "problems": problems},
            },
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return CreatedStudy(study.id, name, folder, url, token, codes, design)


def study_base_url(folder: str | os.PathLike) -> str | None:
    """The address observers reach the study at, as study.json keeps it (None if it was never given)."""
    url = read_study_json(folder).get("base_url")
    return url if isinstance(url, str) and url else None


def audit_state_of(folder: str | os.PathLike) -> dict | None:
    """The state of the audit when the study was made ({state, n_models, problems}), or None for a study
    made before it was recorded."""
    state = read_study_json(folder).get("audit_state")
    return state if isinstance(state, dict) else None


def record_base_url(folder: str | os.PathLike, base_url: str) -> None:
    """Keep `base_url` in the study's study.json: later links use it (`--base-url` overrides and updates)."""
    from human_study.links import observer_link

    observer_link(base_url, "0" * 12, "CODE")  # checks the URL
    info = read_study_json(folder)
    info["base_url"] = base_url
    write_json(Path(folder) / "study.json", info)


# --------------------------------------------------------------------------- opening a study
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


def open_study_dir(
    folder: str | os.PathLike,
    *,
    db_url: str | None = None,
    store_for: Callable[[str], Store] | None = None,
) -> tuple[Store, Study]:
    """Open the database of the study in `folder` (its study.json says where it lives).

    `db_url` overrides the stored URL, which is needed when that URL had a password (it is
    stored masked). `store_for(url)` gives a shared store (the app's cache); without it a new
    Store is made, and closed again if the study is not in it. The returned study's `folder`
    is the folder opened here.
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
    store = Store(db_url) if store_for is None else store_for(db_url)
    try:
        study = store.study_at(info.get("study_id"), folder)
    except StudyError:
        if store_for is None:
            store.close()
        raise StudyError(
            f"the database {public_url(db_url)} holds no study {info.get('study_id')!r}"
        ) from None
    return store, study


# --------------------------------------------------------------------------- finding studies
@dataclass(frozen=True)
class StudyFolder:
    """A study folder found on disk (from its study.json; the database is not opened)."""

    folder: Path
    study_id: str
    name: str
    created_at: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.study_id}) - {self.folder}"


def search_roots(
    served: Iterable[str | os.PathLike] = (),
    *,
    audit_dirs: Iterable[str | os.PathLike | None] = (),
    runs: str | os.PathLike = DEFAULT_STUDY_ROOT,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Where to look for study folders, resolved, each once, in this order.

    Folders `served` (an app started with `--study DIR`) are the only roots when given.
    Otherwise: `audit_dirs` (None and "" skipped), every folder in the environment variable
    DDD_STUDY_DIRS (separated by os.pathsep), then `runs`. Each root may be a study folder, a
    folder of study folders, an audit directory (its `studies/*`) or a folder of audits.
    """
    environ = os.environ if environ is None else environ
    served = [Path(p) for p in served]
    if served:
        roots = served
    else:
        roots = [Path(p) for p in audit_dirs if p]
        roots += [Path(p) for p in environ.get(STUDY_DIRS_ENV, "").split(os.pathsep) if p.strip()]
        roots.append(Path(runs))
    unique: list[Path] = []
    for root in roots:
        resolved = root.expanduser().resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def _read_study_file(path: Path) -> StudyFolder | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != STUDY_FORMAT:
        return None
    study_id = info.get("study_id")
    if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
        return None
    return StudyFolder(
        path.parent.resolve(), study_id, str(info.get("name", "")), str(info.get("created_at", ""))
    )


def list_study_folders(roots: Iterable[str | os.PathLike]) -> list[StudyFolder]:
    """Every study folder under `roots` (see `search_roots`), newest first, each folder once."""
    found: dict[Path, StudyFolder] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for pattern in _STUDY_PATTERNS:
            for path in sorted(root.glob(pattern)):
                entry = _read_study_file(path)
                if entry is not None and entry.folder not in found:
                    found[entry.folder] = entry
    return sorted(found.values(), key=lambda s: (s.created_at, s.name), reverse=True)


def find_study_folder(study_id: object, roots: Iterable[str | os.PathLike]) -> Path:
    """The folder of the study with this id; raises UnknownStudy (a message for observers)."""
    if not isinstance(study_id, str) or not STUDY_ID_RE.match(study_id):
        raise UnknownStudy("this study link is not valid; check the link you were given")
    for entry in list_study_folders(roots):
        if entry.study_id == study_id:
            return entry.folder
    raise UnknownStudy("there is no study with this link on this server; check the link you were given")


@dataclass(frozen=True)
class TokenMatch:
    """What an admin token opens: the study and its admin view (None when no study has it), and
    how many studies could not be opened to check it (their details are in the server's log)."""

    study: Study | None
    admin: StudyAdmin | None
    unreadable: int = 0


def study_for_token(
    token: object, roots: Iterable[str | os.PathLike], *, opener: Callable[[str], tuple[Store, Study]]
) -> TokenMatch:
    """The study, among those under `roots`, whose admin token is `token`.

    `opener(folder)` gives a folder's (store, study); the app passes its cached one.

    The results page asks for the token first and lists nothing: without the right token it
    shows no study, no folder and no path, and it never opens a folder typed by the visitor.
    A study whose database cannot be opened is counted in `unreadable` and logged, never shown.
    """
    token = normalize_token(token)
    if token is None:
        return TokenMatch(None, None)
    unreadable = 0
    for entry in list_study_folders(roots):
        try:
            store, study = opener(str(entry.folder))
            if store.check_token(study.id, token):
                return TokenMatch(study, store.admin(study.id, token), unreadable)
        except StudyError as err:
            unreadable += 1
            log.warning("study folder %s cannot be opened: %s", entry.folder, err)
        except Exception as err:
            if not is_database_error(err):
                raise
            unreadable += 1
            log.warning("the database of study folder %s cannot be read: %s", entry.folder, err)
    return TokenMatch(None, None, unreadable)
