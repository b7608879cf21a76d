"""Study design: pairs really trivial/impossible, exact counterbalancing, seeds, stimuli, errors."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

import audit
from human_study.design import DesignConfig, count_correct, design_study, difficulty_masks, select_pairs
from human_study.errors import StudyError
from human_study.folder import create_study
from human_study.schedule import derive_seed, observer_schedule
from human_study.stimuli import noise_stimulus, render_stimulus
from tests.study_fixtures import make_study_audit, write_audit


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
    return make_study_audit(tmp_path_factory.mktemp("audit") / "run")


# ---------------------------------------------------------------- categories
def test_count_definition_by_hand():
    correct = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    n_correct = count_correct(correct)
    assert n_correct.tolist() == [3, 2, 1, 0]
    trivial, impossible = difficulty_masks(n_correct, 3, tolerance=0)
    assert trivial.tolist() == [True, False, False, False]
    assert impossible.tolist() == [False, False, False, True]
    trivial, impossible = difficulty_masks(np.array([5, 4, 3, 2, 1, 0]), 5, tolerance=1)
    assert trivial.tolist() == [True, True, False, False, False, False]
    assert impossible.tolist() == [False, False, False, False, True, True]


def test_tolerance_too_large_is_explained():
    with pytest.raises(StudyError, match="too large for 4 models"):
        difficulty_masks(np.array([0, 4]), 4, tolerance=2)


def test_pairs_are_trivial_and_impossible(tiny_audit):
    result = audit.load(tiny_audit)
    design = design_study(result, DesignConfig(n_trials=100, n_practice=5, n_catch=4, seed=1))
    n_correct = result.correct().sum(axis=1)
    m = result.n_models
    assert len(design.of_kind("main")) == 100
    assert len(design.of_kind("practice")) == 5
    assert len(design.of_kind("catch")) == 4
    for p in design.pairs:
        assert n_correct[p.trivial_image_id] == m
        assert p.trivial_n_correct == m
        if p.kind == "catch":
            assert p.impossible_image_id is None and p.impossible_class == "noise"
        else:
            assert n_correct[p.impossible_image_id] == 0
    used = [p.trivial_image_id for p in design.pairs] + [
        p.impossible_image_id for p in design.pairs if p.impossible_image_id is not None
    ]
    assert len(used) == len(set(used)), "an image appears in two trials"


def test_tolerance_one_uses_near_images(tiny_audit):
    result = audit.load(tiny_audit)
    strict = design_study(result, DesignConfig(n_trials=10, seed=1))
    loose = design_study(result, DesignConfig(n_trials=10, tolerance=1, seed=1))
    # the fixture has 200 trivial, 180 impossible, 20 with M-1 correct and 20 with 1 correct
    assert (strict.n_trivial, strict.n_impossible) == (200, 180)
    assert (loose.n_trivial, loose.n_impossible) == (220, 200)


def test_match_class_pairs_share_the_label_and_spread_over_classes(tiny_audit):
    result = audit.load(tiny_audit)
    design = design_study(result, DesignConfig(n_trials=40, n_practice=4, match_class=True, seed=2))
    for p in design.pairs:
        assert p.trivial_label == p.impossible_label
    per_class = Counter(p.trivial_label for p in design.of_kind("main"))
    assert sorted(per_class.values()) == [10, 10, 10, 10]


def test_match_class_shortage_names_the_numbers(tmp_path):
    # class 0: 30 trivial, 2 impossible; class 1: 2 trivial, 30 impossible -> 4 matched pairs
    n_correct = [3] * 30 + [0] * 2 + [3] * 2 + [0] * 30
    labels = [0] * 32 + [1] * 32
    path = write_audit(tmp_path / "a", n_correct, labels, n_models=3)
    with pytest.raises(StudyError) as err:
        design_study(audit.load(path), DesignConfig(n_trials=10, n_practice=0, match_class=True, seed=0))
    message = str(err.value)
    assert "32 trivial and 32 impossible" in message
    assert "only 4 class-matched pairs" in message and "--match-class" in message


def test_too_few_images_says_how_many_and_what_to_change(tiny_audit):
    with pytest.raises(StudyError) as err:
        design_study(audit.load(tiny_audit), DesignConfig(n_trials=190, n_practice=5, seed=0))
    message = str(err.value)
    assert "200 trivial and 180 impossible images at tolerance 0 (5 models)" in message
    assert "need 195 of each" in message
    assert "--trials" in message and "--tolerance" in message


def test_catch_shortage(tiny_audit):
    result = audit.load(tiny_audit)
    with pytest.raises(StudyError, match="plus 30 more trivial images for catch trials"):
        design_study(result, DesignConfig(n_trials=170, n_practice=5, n_catch=30, seed=0))
    # class-matched: pairs fit, but too few trivial images are left for the catch trials
    with pytest.raises(StudyError, match="catch trials need 100 trivial images"):
        design_study(result, DesignConfig(n_trials=100, n_practice=5, n_catch=100, match_class=True, seed=0))


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_trials=0),
        dict(n_practice=-1),
        dict(size=8),
        dict(question="which"),
        dict(seed=-3),
        dict(n_catch=1.5),
    ],
)
def test_config_validation(kw):
    with pytest.raises(StudyError):
        DesignConfig(**kw).validate()


def test_pair_selection_is_reproducible_from_the_study_seed():
    rng = np.random.default_rng(0)
    n_correct = rng.choice([0, 3], size=300)
    labels = rng.integers(0, 3, size=300)
    config = DesignConfig(n_trials=50, n_practice=5, seed=11)
    a, _, _ = select_pairs(n_correct, labels, ["a", "b", "c"], n_models=3, config=config)
    b, _, _ = select_pairs(n_correct, labels, ["a", "b", "c"], n_models=3, config=config)
    c, _, _ = select_pairs(
        n_correct, labels, ["a", "b", "c"], n_models=3, config=DesignConfig(n_trials=50, seed=12)
    )
    assert a == b
    assert a != c


# ---------------------------------------------------------------- schedules
class _P:
    def __init__(self, kind, pair_index):
        self.kind, self.pair_index = kind, pair_index


def _pairs(n_practice, n_main, n_catch):
    return (
        [_P("practice", k) for k in range(n_practice)]
        + [_P("main", k) for k in range(n_main)]
        + [_P("catch", k) for k in range(n_catch)]
    )


@pytest.mark.parametrize("n_main", [148, 149])
def test_counterbalancing_is_exact(n_main):
    for seed in range(20):
        schedule = observer_schedule(_pairs(5, n_main, 3), seed)
        for kind, n in (("practice", 5), ("main", n_main), ("catch", 3)):
            sides = Counter(s.trivial_side for s in schedule if s.kind == kind)
            assert sides["left"] + sides["right"] == n
            assert abs(sides["left"] - sides["right"]) == n % 2


def test_odd_side_takes_the_extra_trial():
    left = observer_schedule(_pairs(0, 149, 0), 5, odd_side="left")
    right = observer_schedule(_pairs(0, 149, 0), 5, odd_side="right")
    assert Counter(s.trivial_side for s in left)["left"] == 75
    assert Counter(s.trivial_side for s in right)["left"] == 74


def test_practice_first_then_main_and_catch_mixed():
    schedule = observer_schedule(_pairs(5, 149, 6), 42)
    assert [s.kind for s in schedule[:5]] == ["practice"] * 5
    assert {s.kind for s in schedule[5:]} == {"main", "catch"}
    assert [s.position for s in schedule] == list(range(160))
    catch_positions = [s.position for s in schedule if s.kind == "catch"]
    assert catch_positions != list(range(154, 160)), "catch trials should be mixed in, not appended"


def test_schedule_reproducible_from_seed_and_independent_of_input_order():
    pairs = _pairs(5, 149, 3)
    a = observer_schedule(pairs, 123)
    b = observer_schedule(list(reversed(pairs)), 123)
    c = observer_schedule(pairs, 124)
    assert a == b
    assert [(s.kind, s.pair_index) for s in a] != [(s.kind, s.pair_index) for s in c]


def test_derive_seed_is_plain_sha256():
    digest = hashlib.sha256(b"ddd-study|7|observer|3").digest()
    assert derive_seed(7, "observer", 3) == int.from_bytes(digest[:8], "big") >> 1
    assert 0 <= derive_seed(7, "x") < 2**63


def test_duplicate_pairs_rejected():
    with pytest.raises(StudyError, match="twice"):
        observer_schedule([_P("main", 0), _P("main", 0)], 1)


# ---------------------------------------------------------------- stimuli
def test_tiny_images_upsample_with_nearest_neighbours_and_keep_values():
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    out = render_stimulus(Image.fromarray(arr), 224)
    assert out.size == (224, 224) and out.mode == "L"
    assert np.array_equal(np.asarray(out), np.kron(arr, np.ones((28, 28), dtype=np.uint8)))


def test_large_images_are_scaled_and_centre_cropped():
    arr = np.zeros((300, 450, 3), dtype=np.uint8)
    arr[:, 225:] = 200
    out = render_stimulus(Image.fromarray(arr), 224)
    assert out.size == (224, 224) and out.mode == "RGB"
    values = np.asarray(out)
    assert values[:, :100].max() < 10 and values[:, 130:].min() > 190


def test_other_modes_become_rgb_and_noise_is_deterministic():
    rgba = Image.new("RGBA", (10, 10), (10, 20, 30, 255))
    assert render_stimulus(rgba, 20).mode == "RGB"
    a, b = noise_stimulus(32, 5), noise_stimulus(32, 5)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    values = np.asarray(a, dtype=float)
    assert values.shape == (32, 32, 3) and 110 < values.mean() < 146
    assert noise_stimulus(16, 1, mode="L").mode == "L"


# ---------------------------------------------------------------- the study folder
def test_create_study_writes_only_inside_its_folder(tiny_audit):
    before = {p for p in tiny_audit.rglob("*")}
    made = create_study(
        tiny_audit, "design-test", config=DesignConfig(n_trials=20, n_practice=3, n_catch=2, size=64, seed=9)
    )
    assert made.folder == (tiny_audit / "studies" / "design-test").resolve()
    new = {p for p in tiny_audit.rglob("*")} - before
    assert all(made.folder in p.parents or p == made.folder or p == tiny_audit / "studies" for p in new)
    files = {p.name for p in (made.folder / "images").iterdir()}
    expected = {p.trivial_file for p in made.design.pairs} | {p.impossible_file for p in made.design.pairs}
    assert files == expected and len(files) == 2 * 25
    with Image.open(made.folder / "images" / made.design.pairs[0].trivial_file) as img:
        assert img.size == (64, 64) and img.format == "PNG"
    info = json.loads((made.folder / "study.json").read_text())
    assert info["study_id"] == made.study_id and info["database"] == "study.db"
    assert info["config"]["seed"] == 9 and info["config"]["n_models"] == 5
    assert (made.folder / "study.db").is_file()
    assert made.admin_token not in (made.folder / "study.json").read_text()

    with pytest.raises(StudyError, match="already exists"):
        create_study(tiny_audit, "design-test", config=DesignConfig(n_trials=5, seed=1))


def test_create_study_rejects_bad_names_and_leaves_nothing_on_failure(tiny_audit):
    with pytest.raises(StudyError, match="study name"):
        create_study(tiny_audit, "../escape")
    with pytest.raises(StudyError, match="need 1005 of each"):
        create_study(tiny_audit, "too-big", config=DesignConfig(n_trials=1000, seed=1))
    assert not (tiny_audit / "studies" / "too-big").exists()
    with pytest.raises(audit.AuditError):
        create_study(tiny_audit / "nope", "x")
