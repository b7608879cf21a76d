"""The registry of job kinds: what the engine plans from, in which order, and what it refuses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from audit.running.jobs import (
    DepthSplitJob,
    LearnabilityJob,
    PretrainedJob,
    VariantJob,
    base,
    job_kind,
    job_kinds,
    register_job,
)


def test_the_kinds_are_planned_variants_first_and_pretrained_last():
    assert job_kinds() == ["variant", "depth_split", "learnability", "pretrained"]
    assert [job_kind(k) for k in job_kinds()] == [VariantJob, DepthSplitJob, LearnabilityJob, PretrainedJob]


def test_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(KeyError, match="unknown job kind 'distill'; registered: variant, depth_split"):
        job_kind("distill")


def test_a_new_kind_registers_after_the_others_and_a_taken_kind_is_refused(monkeypatch):
    monkeypatch.setattr(base, "_KINDS", dict(base._KINDS))

    @register_job("distill")
    @dataclass
    class DistillJob:
        kind: str = "distill"

        @classmethod
        def plan(cls, planning):
            return []

    assert job_kinds()[-1] == "distill" and job_kind("distill") is DistillJob
    with pytest.raises(ValueError, match="DistillJob.kind is 'distill', registered as 'other'"):
        register_job("other")(DistillJob)

    class Impostor:
        kind = "variant"

        @classmethod
        def plan(cls, planning):
            return []

    with pytest.raises(ValueError, match="already registered by audit.running.jobs.variant.VariantJob"):
        register_job("variant")(Impostor)
    assert job_kind("variant") is VariantJob

    class NoPlan:
        kind = "noplan"

    with pytest.raises(TypeError, match="no plan"):
        register_job("noplan")(NoPlan)
