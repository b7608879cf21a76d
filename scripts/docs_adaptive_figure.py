"""The figure of docs/tutorials/study.md's adaptive section: a simulated adaptive study, analysed as a lab would.

Four simulated observers (Weibull, thresholds 0.15, 0.25, 0.35 and 0.45 of the models' difficulty gap, slope
3.5, lapse 0.02) answer 120 QUEST+ trials each through the study's own store, on an audit of 40 models whose
1,600 images have every number of correct models; `ddd-audit study analyze --figures` then draws the
psychometric functions that psignifit fits, copied to docs/figures/adaptive_psychometric.png.

    python scripts/docs_adaptive_figure.py
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_MODELS, LAPSE, SLOPE = 40, 0.02, 3.5
THRESHOLDS = (0.15, 0.25, 0.35, 0.45)


def main() -> None:
    from typer.testing import CliRunner

    from audit.cli import app
    from human_study.adaptive import weibull_alpha
    from human_study.design import DesignConfig
    from human_study.folder import create_study, open_study_dir
    from human_study.schema import reading
    from tests.study_fixtures import write_audit

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        audit = write_audit(Path(tmp) / "audit", rng.integers(0, N_MODELS + 1, 1600), rng.integers(0, 4, 1600),
                            n_models=N_MODELS, n_classes=4)
        config = DesignConfig(design="adaptive", n_trials=120, n_practice=0, size=16, seed=5)
        made = create_study(audit, "threshold", config=config, n_observers=len(THRESHOLDS))
        store, study = open_study_dir(made.folder)
        with store:
            with reading(store.engine) as conn:
                levels = {t.id: t.level for t in store.planner().pool(conn, study)}
            for code, threshold in zip(made.observer_codes, THRESHOLDS, strict=True):
                observer = store.get_observer(study.id, code)
                session = store.start_session(observer.id)
                alpha = weibull_alpha(threshold, SLOPE, lapse=0.0)
                while (trial := store.next_trial(observer.id)) is not None:
                    p = 1 - LAPSE - (0.5 - LAPSE) * math.exp(-((levels[trial.trial_id] / alpha) ** SLOPE))
                    side = trial.correct_side if rng.random() < p else \
                        ("left" if trial.correct_side == "right" else "right")
                    store.record_response(session.id, trial.trial_id, side, rt_ms=600.0)
        out = Path(tmp) / "figures"
        result = CliRunner().invoke(app, ["study", "analyze", "--study-dir", str(made.folder), "--token",
                                          made.admin_token, "--figures", str(out)])
        if result.exit_code != 0:
            raise SystemExit(result.output)
        print(result.output)
        target = ROOT / "docs" / "figures" / "adaptive_psychometric.png"
        shutil.copyfile(out / "threshold_psychometric.png", target)
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
