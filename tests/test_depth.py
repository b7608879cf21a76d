"""Prediction depth (baldock2021 §2.1, §4): the pure rules checked by hand, the k-NN probes against
scikit-learn, and the depth of a small network trained on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.neighbors import KNeighborsClassifier

from audit.deep.probes import (
    ExactKNN,
    layer_embeddings,
    probe_depth,
    probe_layer_names,
    reference_subsample,
    resolve_knn_backend,
)
from audit.metrics.depth import (
    DIFFICULTY_TYPES,
    depth_consistency,
    difficulty_type,
    impossible_cause,
    knn_vote,
    prediction_depth,
    probe_accuracy,
)
from audit.models.architectures import create_architecture


# --------------------------------------------------------------------------- the depth rule
def test_depth_is_zero_when_every_probe_agrees():
    final = np.array([3, 0, 7])
    probes = np.repeat(final[:, None], 6, axis=1)  # input .. softmax all give the final class
    np.testing.assert_array_equal(prediction_depth(probes, final), [0, 0, 0])


def test_depth_is_the_last_layer_when_only_the_softmax_probe_agrees():
    final = np.array([3, 0, 7])
    probes = np.tile(np.array([[1], [1], [1]]), (1, 6))
    probes[:, -1] = final
    np.testing.assert_array_equal(prediction_depth(probes, final), [5, 5, 5])


def test_depth_is_one_after_the_last_disagreeing_probe():
    # probes after layers 0..4; the final class is 2
    probes = np.array([
        [2, 1, 2, 2, 2],  # layer 1 disagrees, layers 2.. agree -> depth 2
        [1, 2, 2, 2, 2],  # only the input disagrees -> depth 1
        [2, 2, 2, 1, 2],  # layer 3 disagrees -> depth 4
        [2, 2, 2, 2, 1],  # the softmax probe disagrees -> undefined (baldock2021 A.6.1)
    ])
    depth = prediction_depth(probes, np.full(4, 2))
    np.testing.assert_array_equal(depth[:3], [2, 1, 4])
    assert np.isnan(depth[3])


def test_depth_equals_a_loop_over_the_definition():
    rng = np.random.default_rng(0)
    final = rng.integers(0, 3, 500)
    probes = rng.integers(0, 3, (500, 7))
    probes[:, -1] = np.where(rng.random(500) < 0.9, final, probes[:, -1])
    depth = prediction_depth(probes, final)
    for i in range(500):
        if probes[i, -1] != final[i]:
            assert np.isnan(depth[i])
            continue
        expected = min(d for d in range(7) if all(probes[i, j] == final[i] for j in range(d, 7)))
        assert depth[i] == expected


def test_depth_rejects_bad_input():
    with pytest.raises(ValueError, match="3 images but final_predictions"):
        prediction_depth(np.zeros((3, 4), dtype=int), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="integer class indices"):
        prediction_depth(np.zeros((3, 4)), np.zeros(3, dtype=int))


def test_knn_vote_matches_scikit_learn_kneighbors_classifier():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    ref, query = x[:1200].astype(np.float32), x[1200:].astype(np.float32)
    knn = ExactKNN(30, "sklearn").fit(ref, y[:1200])
    pred, share = knn_vote(knn.neighbor_labels(query), n_classes=10)
    peer = KNeighborsClassifier(n_neighbors=30, algorithm="brute").fit(ref, y[:1200])
    np.testing.assert_array_equal(pred, peer.predict(query))
    np.testing.assert_allclose(share, peer.predict_proba(query).max(axis=1))


def test_knn_vote_breaks_ties_towards_the_lowest_class():
    pred, share = knn_vote(np.array([[4, 1, 4, 1], [2, 2, 0, 0]]), n_classes=5)
    np.testing.assert_array_equal(pred, [1, 0])
    np.testing.assert_allclose(share, [0.5, 0.5])


def test_faiss_and_scikit_learn_find_the_same_neighbours():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    ref, query = rng.normal(size=(800, 40)).astype(np.float32), rng.normal(size=(200, 40)).astype(np.float32)
    labels = rng.integers(0, 10, 800)
    a = ExactKNN(30, "sklearn").fit(ref, labels).neighbor_labels(query)
    b = ExactKNN(30, "faiss").fit(ref, labels).neighbor_labels(query)
    assert (knn_vote(a, n_classes=10)[0] == knn_vote(b, n_classes=10)[0]).mean() > 0.99
    assert resolve_knn_backend("auto") == "faiss"


def test_probe_accuracy_by_hand():
    probes = np.array([[0, 1], [1, 1], [2, 0]])
    np.testing.assert_allclose(probe_accuracy(probes, [0, 1, 0]), [2 / 3, 2 / 3])


# --------------------------------------------------------------------------- the four types and the causes
def test_difficulty_types_are_the_corners_of_baldock2021_fig7():
    val = np.array([0, 1, 5, 4, np.nan])
    train = np.array([1, 5, 0, 5, 2])
    types = difficulty_type(val, train, max_depth=5)
    assert list(types) == ["easy", "looks_like_another_class", "ambiguous_without_label", "ambiguous", ""]
    assert set(types[:4]) == set(DIFFICULTY_TYPES)


def test_impossible_causes_combine_depth_and_label_issues():
    val = np.array([0, 1, 5, 4, np.nan])
    flag = np.array([True, False, True, False, True])
    assert list(impossible_cause(val, flag, max_depth=5)) == ["label_error", "look_alike", "ambiguous",
                                                              "ambiguous", ""]
    train = np.array([5, 5, 0, 5, 0])  # a late-decided image that is easy with its label is a look-alike
    assert list(impossible_cause(val, flag, max_depth=5, depth_train=train))[:4] == [
        "label_error", "look_alike", "look_alike", "ambiguous"]
    with pytest.raises(ValueError, match="0..max_depth=5"):
        impossible_cause(np.array([6.0]), np.array([True]), max_depth=5)


def test_depth_consistency_is_spearman_per_pair():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 6, 300).astype(float)
    b = np.clip(a + rng.integers(-1, 2, 300), 0, 5)
    c = rng.integers(0, 6, 300).astype(float)
    b[:10] = np.nan
    rho, mean = depth_consistency(np.stack([a, b, c], axis=1))
    ok = ~np.isnan(b)
    assert rho[0, 1] == pytest.approx(stats.spearmanr(a[ok], b[ok]).statistic)
    assert rho[0, 2] == pytest.approx(stats.spearmanr(a, c).statistic)
    assert mean == pytest.approx((rho[0, 1] + rho[0, 2] + rho[1, 2]) / 3)
    assert rho[0, 1] > 0.8 > abs(rho[0, 2])


# --------------------------------------------------------------------------- probes in real networks
@pytest.mark.parametrize("arch,kwargs,n_hidden", [
    ("resnet_small", {"width": 8, "depth": 8}, 4),  # stem + 3 stages
    ("densenet_small", {"growth": 4, "depth": 1}, 4),  # stem + 3 dense blocks
    ("vgg_small", {"width": 8, "depth": 1}, 3),  # one ReLU per stage
])
def test_probe_positions_and_pooled_embeddings(arch, kwargs, n_hidden):
    from audit.running.train import Normalizer, TensorData

    model = create_architecture(arch, in_channels=1, n_classes=10, **kwargs)
    names = probe_layer_names(model)
    assert names[0] == "input" and names[-1] == "softmax" and len(names) == n_hidden + 2
    data = TensorData(torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8), torch.zeros(20, dtype=torch.long))
    (start, emb), = list(layer_embeddings(model, data.images, Normalizer.fit(data), max_dim=512, batch_size=50))
    assert start == 0 and len(emb) == len(names)
    assert all(e.shape[0] == 20 and e.dtype == np.float32 and e.shape[1] <= 784 for e in emb)
    assert emb[0].shape[1] == 784 or emb[0].shape[1] <= 512
    np.testing.assert_allclose(emb[-1].sum(axis=1), 1, rtol=1e-5)  # the softmax


@pytest.fixture(scope="module")
def digits_model():
    """A small ResNet trained for 10 epochs on digits (1198 training, 599 validation images; about 93%)."""
    from audit.data import load_dataset
    from audit.models.variants import VariantSpec
    from audit.running.train import TensorData, train_variant

    torch.set_num_threads(1)
    ds = load_dataset("digits")
    dev = torch.device("cpu")
    train = TensorData.from_numpy(np.array(ds.train.images), ds.train.labels, dev)
    val = TensorData.from_numpy(np.array(ds.val.images), ds.val.labels, dev)
    spec = VariantSpec(name="base", group="base", arch_kwargs={"width": 16, "depth": 8}, epochs=10, lr=0.02,
                       batch_size=32, lr_milestones=(0.7,))
    res = train_variant(spec, train, val, 10, device=dev)
    return res.model, train, val, ds


@pytest.mark.slow
def test_prediction_depth_of_a_trained_network(digits_model):
    from audit.running.train import Normalizer

    model, train, val, ds = digits_model
    ref = reference_subsample(np.arange(len(train)), 800, random_state=0)
    res = probe_depth(model, train.images[torch.from_numpy(ref)], ds.train.labels[ref], val.images,
                      Normalizer.fit(train), n_classes=10, backend="sklearn")
    assert res.layers == ["input", "stem", "stage1", "stage2", "stage3", "softmax"] and res.max_depth == 5
    assert res.n_reference == 800 and res.k == 30
    correct = res.predicted == ds.val.labels
    assert correct.mean() > 0.85
    # the softmax probe agrees with the network for nearly every image (baldock2021 A.6.1)
    assert np.isnan(res.depth).mean() < 0.05
    # predictions settled earlier are more often right (baldock2021 Fig. 4, right)
    assert np.nanmean(res.depth[correct]) < np.nanmean(res.depth[~correct])
    defined = ~np.isnan(res.depth)
    assert set(np.unique(res.depth[defined])) <= set(range(6))
    frame = res.frame(np.arange(len(val)), "val")
    assert list(frame.columns[:4]) == ["image_id", "split", "depth", "predicted"]
    assert [c for c in frame.columns if c.startswith("probe_")] == [f"probe_{n}" for n in res.layers]
    np.testing.assert_array_equal(prediction_depth(frame.filter(like="probe_").to_numpy(np.int64),
                                                   frame["predicted"].to_numpy()), res.depth)
