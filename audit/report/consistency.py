"""The report's error-consistency part: κ between every two models, on all images and on the inconclusive ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.metrics import consistency
from audit.plots import split as split_plots
from audit.report import text
from audit.report.parts import ReportContent, ReportInputs, register_part

#: above this many models, the bootstrap of mean κ resamples images over a random subset of them
BOOTSTRAP_MAX_MODELS = 50


@register_part("consistency", order=30, summary_lines=text.consistency_lines)
def consistency_part(inputs: ReportInputs, content: ReportContent) -> None:
    """Error consistency on all images and on the inconclusive ones (meding2022 §2, §3.3, Fig. 6)."""
    content.summary["error_consistency"] = ec = {}
    correct, names, notes = inputs.correct, inputs.names, content.notes
    n_images, n_models = correct.shape
    matrices = {}
    if n_models < 2:
        notes.append("one model: error consistency needs at least two models and is skipped")
        return
    subsets = (("all", np.ones(n_images, dtype=bool)), ("inconclusive", inputs.split.mask("inconclusive")))
    for subset, mask in subsets:
        n_sub = int(mask.sum())
        if n_sub == 0:
            notes.append(f"no {subset} images: error consistency on them is skipped")
            continue
        sub = correct[mask]
        kappa = consistency.error_consistency_matrix(sub)
        entry = {"mean": consistency.mean_error_consistency(kappa), "n_images": n_sub}
        if inputs.n_bootstrap:
            ci = consistency.error_consistency_bootstrap(sub, n_bootstrap=inputs.n_bootstrap,
                                                         random_state=inputs.random_state, per_pair=False,
                                                         max_models=BOOTSTRAP_MAX_MODELS, kappa=kappa)
            entry["ci95"] = [ci["mean_low"], ci["mean_high"]]
            if ci["models_resampled"] < n_models and subset == "all":
                notes.append(f"the 95% intervals of mean κ resample images over a random {ci['models_resampled']} "
                             f"of the {n_models} models (error_consistency_bootstrap, max_models)")
        ec[subset] = entry
        matrices[subset] = pd.DataFrame(kappa, index=names, columns=names).rename_axis("model")
        content.table(f"ec_{subset}", matrices[subset])
    if matrices:
        groups_of = inputs.groups_of
        content.figure("error_consistency", lambda: split_plots.kappa_matrices_figure(matrices, groups_of))
