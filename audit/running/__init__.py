"""Running an audit: the engine plans and runs the jobs (`engine`), through local processes or Ray
(`executors`); the jobs (`jobs`: trained variants, pretrained models, deeper measures) train (`train`) and
predict (`predict`); `score` runs models that were not in a finished audit on its images (`ddd-audit
score`); `progress_lines` is the plain progress of a run in a log."""
