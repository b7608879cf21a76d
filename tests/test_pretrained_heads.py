"""Label spaces with the real efficientnet_lite0: a mapping file aggregated as model-vs-human does,
a linear probe fitted on the training split only, and the errors of unmappable datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audit.data.decode_cache import DecodeCache, Preprocessing
from audit.data.sources import load_dataset
from audit.models.heads import LabelSpaceError, MappingFileError, read_mapping, resolve_head
from audit.models.pretrained import load_model, parse_spec
from audit.running.jobs import JobContext, pretrained_jobs
from audit.running.predict import predict
from tests.test_imagenet_photos import write_crops

CLASSES = {"cat": "chelsea", "coffee_cup": "coffee", "rocket": "rocket"}
MAPPING = {"cat": [281, 282, 283, 284, 285], "coffee_cup": ["n07920052", 968, 504], "rocket": [657, 744, 812]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """An ImageFolder tree whose classes are not synsets: train/ 6 crops and val/ 3 other crops per photo."""
    root = tmp_path_factory.mktemp("photos_tree")
    for i, (cls, name) in enumerate(CLASSES.items()):
        write_crops(root / "train" / cls, name, 6, seed=100 + i)
        write_crops(root / "val" / cls, name, 3, seed=200 + i, prefix="v")
    return root


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mapping") / "mapping.json"
    path.write_text(json.dumps(MAPPING))
    return path


@pytest.fixture(scope="module")
def lite0():
    return load_model(parse_spec("efficientnet_lite0")).model


def test_mapping_aggregates_as_model_vs_human(tree, mapping_file, lite0):
    ds = load_dataset(f"imagefolder:{tree}")
    (job,) = pretrained_jobs(["efficientnet_lite0"], ds, mapping=str(mapping_file))
    assert job.head.kind == "mapping" and job.head.class_indices[1] == (967, 968, 504)
    out = job.run(JobContext(dataset=ds, device="cpu"))
    assert out.record["head"] == "mapping" and out.record["mapping_file"] == str(mapping_file)
    # by hand, as modelvshuman/datasets/decision_mappings.py (ImageNetProbabilitiesTo16ClassesMapping):
    # softmax over the 1,000 logits, np.mean over each class's indices, argmax
    prep = Preprocessing.from_model(lite0)
    images = DecodeCache().get(ds.val, prep).images
    logits = predict(lite0, images, mean=prep.mean, std=prep.std).values.astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    agg = np.stack([p[:, [967 if v == "n07920052" else v for v in MAPPING[c]]].mean(1) for c in ds.classes], 1)
    dec = out.decisions.sort_values("image_id")
    np.testing.assert_array_equal(dec["predicted"], agg.argmax(1))
    np.testing.assert_allclose(dec["top_prob"], agg.max(1) / agg.sum(1), rtol=1e-4)
    assert out.record["accuracy"] == 1.0


def test_mapping_as_csv_equals_json(tmp_path, mapping_file):
    rows = ["class,imagenet_index"] + [f"{c},{v}" for c, vs in MAPPING.items() for v in vs]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    classes = list(CLASSES)
    assert read_mapping(tmp_path / "m.csv", classes) == read_mapping(mapping_file, classes)


def test_mapping_file_errors(tree, tmp_path):
    ds = load_dataset(f"imagefolder:{tree}")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**MAPPING, "dog": [200]}))
    with pytest.raises(MappingFileError, match="names class 'dog', which the dataset does not have"):
        pretrained_jobs(["efficientnet_lite0"], ds, mapping=str(bad))
    bad.write_text(json.dumps({"cat": [281], "rocket": [657]}))
    with pytest.raises(MappingFileError, match="no ImageNet indices for 1 of 3 classes: 'coffee_cup'"):
        pretrained_jobs(["efficientnet_lite0"], ds, mapping=str(bad))
    bad.write_text(json.dumps({**MAPPING, "cat": [1000]}))
    with pytest.raises(MappingFileError, match="outside 0..999"):
        pretrained_jobs(["efficientnet_lite0"], ds, mapping=str(bad))


def test_unmappable_classes_without_probe_fail_at_planning(tree):
    ds = load_dataset(f"imagefolder:{tree}")
    with pytest.raises(LabelSpaceError, match="not ImageNet-1k synsets; allow the linear probe") as err:
        pretrained_jobs(["efficientnet_lite0"], ds, probe=False)
    assert "\n" not in str(err.value)
    with pytest.raises(LabelSpaceError, match="needs a training split"):
        resolve_head(list(CLASSES), has_train=False)


def test_linear_probe_is_fitted_on_the_training_split_only(tree, lite0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ds = load_dataset(f"imagefolder:{tree}")
    (job,) = pretrained_jobs(["efficientnet_lite0@96"], ds)
    assert job.head.kind == "linear_probe"
    out = job.run(JobContext(dataset=ds, device="cpu", seed=3))
    probe = out.record["probe"]
    assert out.record["head"] == "linear_probe" and probe["train_size"] == len(ds.train) == 18
    assert out.record["accuracy"] == 1.0  # three very different photos
    # the same probe by hand with scikit-learn, from training features only
    prep = Preprocessing.from_model(lite0, image_size=96)
    cache = DecodeCache()
    f_train = predict(lite0, cache.get(ds.train, prep).images, mean=prep.mean, std=prep.std, output="features")
    f_val = predict(lite0, cache.get(ds.val, prep).images, mean=prep.mean, std=prep.std, output="features")
    scaler = StandardScaler().fit(f_train.values)
    clf = LogisticRegression(C=probe["C"], max_iter=300).fit(scaler.transform(f_train.values), ds.train.labels)
    expected = clf.predict_proba(scaler.transform(f_val.values))
    dec = out.decisions.sort_values("image_id")
    np.testing.assert_array_equal(dec["predicted"], expected.argmax(1))
    np.testing.assert_allclose(dec["true_prob"], expected[np.arange(len(ds.val)), ds.val.labels], atol=1e-4)


def test_probe_subset_is_seeded_and_recorded(tree):
    ds = load_dataset(f"imagefolder:{tree}")
    (job,) = pretrained_jobs(["efficientnet_lite0@64+probe"], ds, probe_train_size=9)
    assert job.name == "efficientnet_lite0-64px-probe" and job.describe()["probe_train_size"] == 9
    out = job.run(JobContext(dataset=ds, device="cpu"))
    assert out.record["probe"]["train_size"] == 9
