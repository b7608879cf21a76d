"""What the store trusts: names that become paths, paths inside an audit, and who recorded a dataset root.

Audit folders, grid files and import tables travel between people, so every value read from them is
untrusted (see docs/security.md):

- `check_name` is the one rule for every name that becomes part of a path (variants, makers, models,
  studies, observers, subsets): `NAME_PATTERN`, no separator, no "..". Callers check where they parse.
- `inside(root, *parts)` resolves a path and refuses anything outside `root`; every write of an audit
  goes through it (`AuditDir.file`).
- `seal_root` / `root_is_sealed`: an HMAC of the recorded dataset root under a key that lives only in the
  user's state folder on this machine. An audit created here carries a valid seal; an audit folder from
  anyone else (or a manifest edited by hand) does not, and its images are read only from a folder the
  user names (`--images-root`).
- `refused_root`: `/` and system folders are never read as a dataset root unless given explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from audit.store.files import AuditError

#: The one rule for names that become part of a path.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@+-]*"
NAME_RE = re.compile(NAME_PATTERN)
NAME_MAX = 128
NAME_RULE_TEXT = (f"1-{NAME_MAX} letters, digits, '_', '.', '@', '+' or '-', starting with a letter or digit, "
                  "without '..'")


class UnsafeNameError(AuditError):
    """A name that would become part of a path breaks the name rule."""


def name_problem(name: object) -> str | None:
    """Why `name` breaks the name rule, or None when it follows it."""
    if not isinstance(name, str):
        return f"must be text, got {type(name).__name__}"
    if not name:
        return "is empty"
    if len(name) > NAME_MAX:
        return f"is longer than {NAME_MAX} characters"
    if "/" in name or "\\" in name or os.sep in name:
        return "holds a path separator"
    if ".." in name:
        return "holds '..'"
    if not NAME_RE.fullmatch(name):
        return "holds characters outside the rule"
    return None


def check_name(name: object, what: str = "name") -> str:
    """Return `name` when it follows the name rule; raise UnsafeNameError naming `what` otherwise."""
    problem = name_problem(name)
    if problem:
        raise UnsafeNameError(f"{what} {name!r} {problem}; a {what} must be {NAME_RULE_TEXT}")
    return name  # type: ignore[return-value]


def inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """`root / parts`, resolved, refused (AuditError) unless it lies inside `root` (also resolved).

    Symbolic links are resolved, so a link inside the audit that points out of it is refused too.
    """
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and not target.is_relative_to(base):
        shown = "/".join(str(p) for p in parts)
        raise AuditError(f"{shown!r} would lie outside {base}; nothing is written there")
    return target


# --------------------------------------------------------------------------- created here: the root's seal
KEY_ENV = "DDD_AUDIT_STATE_DIR"


def state_dir() -> Path:
    """Where this user's key lives: $DDD_AUDIT_STATE_DIR, else $XDG_STATE_HOME/ddd-audit, else
    ~/.local/state/ddd-audit."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ddd-audit"


def _key(create: bool) -> bytes | None:
    path = state_dir() / "audit.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # written whole under a temporary name, then linked into place: a process that starts at the same
        # moment either makes the key or reads the complete one, never a half-written file
        tmp = path.with_name(f".audit.key.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:  # no writable home: audits made here are then treated as received
        return None
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _seal_text(manifest: dict) -> bytes | None:
    """What the seal covers: where the images are read from (root, or a table/shard reader) and the
    symlink policy; None when the manifest records neither."""
    dataset = manifest.get("dataset") if isinstance(manifest.get("dataset"), dict) else {}
    root, reader = dataset.get("root"), dataset.get("reader")
    if not root and not reader:
        return None
    payload = {"root": str(root) if root else None, "reader": reader,
               "follow_symlinks": recorded_follow_symlinks(manifest)}
    return ("ddd-audit root seal/1\0" + json.dumps(payload, sort_keys=True, default=str)).encode()


def seal_manifest(manifest: dict) -> dict:
    """Put into manifest["dataset"] the seal of where its images are read from: it marks a dataset root
    (or reader) that comes from this user's own flags on this machine. Without a writable state folder
    nothing is sealed, and the audit is read as one received from elsewhere."""
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict):
        return manifest
    dataset.pop("root_seal", None)
    text = _seal_text(manifest)
    key = _key(create=True) if text is not None else None
    if key is not None:
        dataset["root_seal"] = hmac.new(key, text, hashlib.sha256).hexdigest()
    return manifest


def recorded_follow_symlinks(manifest: dict) -> bool:
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    return bool(config.get("follow_symlinks", False))


def root_is_sealed(manifest: dict) -> bool:
    """True when the manifest's dataset root (or reader) was recorded by this user on this machine."""
    dataset = manifest.get("dataset") if isinstance(manifest.get("dataset"), dict) else {}
    given = dataset.get("root_seal")
    text = _seal_text(manifest)
    if text is None or not isinstance(given, str):
        return False
    key = _key(create=False)
    if key is None:
        return False
    return hmac.compare_digest(hmac.new(key, text, hashlib.sha256).hexdigest(), given)


# --------------------------------------------------------------------------- roots never read unless named
SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
                  "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")
#: system folders whose whole tree is refused (not only the folder itself)
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run", "/sbin",
                "/sys", "/usr/bin", "/usr/lib", "/usr/sbin", "/var/lib", "/var/log", "/var/run")


def refused_root(root: str | os.PathLike) -> str | None:
    """Why `root` is not read as a recorded dataset root, or None: `/`, a system folder, the home folder."""
    path = Path(root).resolve()
    text = str(path)
    home = Path.home().resolve()
    if text in SYSTEM_FOLDERS or path == home:
        return f"{text} is a system folder or the home folder"
    for tree in SYSTEM_TREES:
        if path.is_relative_to(tree) and not home.is_relative_to(tree):  # root's home is /root
            return f"{text} lies in the system folder {tree}"
    if path.is_relative_to(home) and path.relative_to(home).parts[0].startswith("."):
        return f"{text} lies in a hidden folder of the home folder"
    return None
