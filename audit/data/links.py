"""The one symlink policy of run, export and the app (docs/security.md).

A symbolic link inside a dataset folder that points out of it is not followed by default: its images
are skipped (and counted in the summary as skipped links), export refuses them and the app shows none.
`--follow-symlinks` audits them, and an audit made with it lets export copy them and the app show them.
Links that stay inside the folder are always followed.
"""

from __future__ import annotations

import os

from audit.data.base import IMAGE_EXTENSIONS

#: the reason recorded in dataset.skipped for an image behind a link that leaves the dataset folder
LINK_REASON = "symbolic link leaves the dataset folder (--follow-symlinks audits it)"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk_images(folder: str | os.PathLike, root: str | os.PathLike, *, follow_symlinks: bool = False,
                skipped: list[dict] | None = None, split: str = "val") -> list[str]:
    """The image files under `folder` (sorted within each folder), as paths under `folder`.

    Files and folders whose real location leaves `root` are skipped unless `follow_symlinks`; each skipped
    entry (a file, or a whole linked folder) is appended to `skipped` with LINK_REASON. A folder reached
    twice through links is walked once.
    """
    real_root = os.path.realpath(root)
    skipped = skipped if skipped is not None else []
    found: list[str] = []
    seen: set[str] = set()
    start = os.path.realpath(folder)
    if not follow_symlinks and not _inside(start, real_root):
        skipped.append({"path": str(folder), "split": split, "reason": LINK_REASON})
        return found
    seen.add(start)
    for here, dirs, files in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(here, d))
            if real in seen:  # a loop, or a folder linked twice
                continue
            if not follow_symlinks and not _inside(real, real_root):
                skipped.append({"path": os.path.join(here, d), "split": split, "reason": LINK_REASON})
                continue
            seen.add(real)
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if not f.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(here, f)
            if not follow_symlinks and not _inside(os.path.realpath(path), real_root):
                skipped.append({"path": path, "split": split, "reason": LINK_REASON})
                continue
            found.append(path)
    return found


def is_link_skip(entry: dict) -> bool:
    return entry.get("reason") == LINK_REASON
