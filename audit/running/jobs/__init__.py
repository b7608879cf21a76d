"""Jobs: one per trained variant or pretrained model, and the jobs that are not models (depth_split, learnability).

Each job kind registers itself with `@register_job("kind")` and lists its jobs in
`plan(planning)`; the engine asks every registered kind, in the order imported
below. To add a kind, write a module here and import it below.
"""

from audit.running.jobs.base import (
    Job,
    JobContext,
    JobOutput,
    JobPlanning,
    ProgressFn,
    environment,
    job_kind,
    job_kinds,
    register_job,
)
from audit.running.jobs.variant import VariantJob

# isort: split
# The kinds register in this order, which is the order of the jobs in a plan.
from audit.running.jobs.deep import DepthSplitJob, LearnabilityJob
from audit.running.jobs.pretrained import PretrainedJob, pretrained_jobs

__all__ = [
    "DepthSplitJob",
    "Job",
    "JobContext",
    "JobOutput",
    "JobPlanning",
    "LearnabilityJob",
    "PretrainedJob",
    "ProgressFn",
    "VariantJob",
    "environment",
    "job_kind",
    "job_kinds",
    "pretrained_jobs",
    "register_job",
]
