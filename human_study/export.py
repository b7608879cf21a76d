"""CSV exports of a study's responses: the model-vs-human raw-data layout, a complete table and, for an
adaptive study, a tidy table of its levels (one row per main trial) for psychometric fitting tools.

Pure frame-to-file functions: they read no database and compute no statistics. Observer codes
are credentials and are never exported; subjects appear as subject-01, subject-02, ...
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from audit.store import write_csv
from audit.store.safety import check_name

MVH_COLUMNS = ("subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename")
FULL_COLUMNS = (
    "subj",
    "observer_id",
    "seed",
    "session",
    "session_id",
    "response_id",
    "trial_id",
    "kind",
    "pair_index",
    "position",
    "trial",
    "left_file",
    "right_file",
    "trivial_side",
    "choice",
    "chosen_category",
    "correct_category",
    "correct",
    "rt_ms",
    "rt_source",
    "iti_ms",
    "fixation_ms",
    "stimulus_ms",
    "mask_ms",
    "shown_at",
    "answered_at",
    "trivial_image_id",
    "trivial_label",
    "trivial_class",
    "trivial_n_correct",
    "trivial_file",
    "impossible_image_id",
    "impossible_label",
    "impossible_class",
    "impossible_n_correct",
    "impossible_file",
)
#: the tidy table of an adaptive study: trial (1-based within the main part), level (the pair's gap in mean
#: correctness), pair (the trial's key, as in model-vs-human's imagename), response (the side picked),
#: correct (1 or 0), rt (seconds)
TIDY_COLUMNS = ("observer", "trial", "level", "pair", "response", "correct", "rt")


def _key(name: str) -> str:
    """A stimulus file name as it stands inside imagename: no extension, `-` for `_`."""
    return (name[:-4] if name.endswith(".png") else name).replace("_", "-")


def model_vs_human_frame(responses: pd.DataFrame) -> pd.DataFrame:
    """Rows of main and catch trials (practice left out) in the model-vs-human raw-data columns.

    subj; session (the observer's session number: 1 = first session, 2 after a reload that
    answered more trials, ...; never a database id); trial (1-based within the test
    block); rt (seconds, empty when unknown); object_response (category of the image the observer
    picked: "trivial" or "impossible"; in an adaptive study the easier and the harder image of the pair);
    category (the right answer); condition ("main" or "catch"); imagename ("0001_main_L-image-12_R-image-345_main-pair-7": trial, condition, left and right
    stimulus; then the pair key). So accuracy = mean(object_response == category), as in model-vs-human.

    model-vs-human matches a trial across observers by the text after the last `_` of imagename.
    That field is the pair key, "main-pair-7" (kind and trial id): the same for every observer,
    whichever side each image was shown on. Stimulus names inside imagename use `-`, never `_`.
    An adaptive study's rows also carry `level`, the pair's gap in the models' mean correctness.
    """
    test = responses[responses["kind"] != "practice"].sort_values(["subj", "position"])
    level = {"level": test["level"].to_numpy(dtype=float)} if "level" in test else {}
    imagename = [
        f"{n:04d}_{k}_L-{_key(left)}_R-{_key(right)}_{k}-pair-{int(trial)}"
        for n, k, left, right, trial in zip(
            test["number"], test["kind"], test["left_file"], test["right_file"], test["trial_id"], strict=True
        )
    ]
    return pd.DataFrame(
        {
            "subj": test["subj"].to_numpy(),
            "session": test["session_index"].to_numpy(dtype=int),
            "trial": test["number"].to_numpy(dtype=int),
            # seconds to 0.1 ms, as measured: 2928.1 ms is 2.9281, not 2.9280999999998603
            "rt": (test["rt_ms"].to_numpy(dtype=float) / 1000.0).round(4),
            "object_response": test["chosen_category"].to_numpy(),
            "category": test["correct_category"].to_numpy(),
            "condition": test["kind"].to_numpy(),
            "imagename": imagename,
            **level,
        },
        columns=list(MVH_COLUMNS) + list(level),
    )


def full_frame(responses: pd.DataFrame) -> pd.DataFrame:
    """Every response (practice included) with every column we have, except observer codes; an adaptive
    study's `level` last."""
    frame = responses.rename(columns={"session_index": "session", "number": "trial"})
    frame = frame.sort_values(["subj", "position"])
    extra = ["level"] if "level" in frame.columns else []  # an adaptive study's pair gap
    out = frame[[c for c in FULL_COLUMNS if c in frame.columns] + extra].copy()
    for col in ("shown_at", "answered_at"):
        if col in out:
            out[col] = out[col].map(lambda t: t.isoformat() if pd.notna(t) else "")
    return out.reset_index(drop=True)


def tidy_frame(responses: pd.DataFrame) -> pd.DataFrame:
    """The main trials of an adaptive study, one row each (TIDY_COLUMNS), in each observer's order."""
    if "level" not in responses:
        raise ValueError("the responses have no level: only an adaptive study has a tidy table of levels")
    main = responses[responses["kind"] == "main"].sort_values(["subj", "position"])
    return pd.DataFrame(
        {
            "observer": main["subj"].to_numpy(),
            "trial": main["number"].to_numpy(dtype=int),
            "level": main["level"].to_numpy(dtype=float),
            "pair": [f"main-pair-{int(t)}" for t in main["trial_id"]],
            "response": main["choice"].to_numpy(),
            "correct": main["correct"].to_numpy(dtype=int),
            "rt": (main["rt_ms"].to_numpy(dtype=float) / 1000.0).round(4),
        },
        columns=list(TIDY_COLUMNS),
    )


def write_tidy(responses: pd.DataFrame, out_dir: str | os.PathLike, *, prefix: str) -> Path:
    """Write `<prefix>_levels.csv` (tidy_frame) into `out_dir` (atomically)."""
    check_name(prefix, "study name")
    path = Path(out_dir) / f"{prefix}_levels.csv"
    write_csv(path, tidy_frame(responses), for_people=False)
    return path


def write_exports(responses: pd.DataFrame, out_dir: str | os.PathLike, *, prefix: str) -> tuple[Path, Path]:
    """Write `<prefix>_model-vs-human.csv` and `<prefix>_responses.csv` into `out_dir` (atomically).

    The complete table is for people: its formula cells (class names, say) are neutralised. The
    model-vs-human table keeps that format's own rules, verbatim: every value in it is made by the
    tool (subject-NN, trivial/impossible, main/catch, stimulus names), never read from an audit.
    """
    check_name(prefix, "study name")  # read from a study's database: it must not lead out of out_dir
    out_dir = Path(out_dir)
    mvh = out_dir / f"{prefix}_model-vs-human.csv"
    full = out_dir / f"{prefix}_responses.csv"
    write_csv(mvh, model_vs_human_frame(responses), for_people=False)
    write_csv(full, full_frame(responses))
    return mvh, full
