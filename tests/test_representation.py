"""RSA and linear CKA (audit.metrics.representation) against their formulas and a hand-worked case."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from audit.metrics.representation import (
    Representation,
    cka_from_grams,
    compare,
    linear_cka,
    ranks,
    rsa,
    similarity_matrices,
)


def cka_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019 eq. 2 as written: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), H formed explicitly."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T  # noqa: E741

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize("seed", range(5))
def test_cka_matches_its_formula(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(12, 5))
    y = x @ rng.normal(size=(5, 7)) + rng.normal(size=(12, 7)) * (seed + 1) * 0.5
    assert linear_cka(x, y) == pytest.approx(cka_direct(x, y), abs=1e-10)
    assert cka_from_grams(x @ x.T, y @ y.T) == pytest.approx(cka_direct(x, y), abs=1e-10)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 4))
    q = ortho_group.rvs(6, random_state=2)
    base = linear_cka(x, y)
    assert 0 < base < 1
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, x @ q * 2.0) == pytest.approx(1.0, abs=1e-10)
    # not invariant to a general linear map, so the test above can fail
    assert abs(linear_cka(x @ rng.normal(size=(6, 6)), y) - base) > 1e-3


def test_rsa_on_a_hand_worked_four_image_case():
    # u and v have zero mean and are orthogonal; an offset per image changes no correlation
    u, v = np.array([1.0, 0.0, -1.0]), np.array([1.0, -2.0, 1.0])
    a = np.stack([u + 3, u + v, v - 1, -u])
    b = np.stack([u, v + 2, u + v, -v])
    rdm_a = Representation.from_features(a, np.arange(4)).rdm()
    rdm_b = Representation.from_features(b, np.arange(4)).rdm()
    # by hand, pairs 01 02 03 12 13 23: corr(u, u+v) = 1/2, corr(v, u+v) = sqrt(3)/2
    r3 = np.sqrt(3) / 2
    want_a = [1 - 0.5, 1, 2, 1 - r3, 1.5, 1]
    want_b = [1, 1 - 0.5, 1, 1 - r3, 2, 1 + r3]
    iu = np.triu_indices(4, 1)
    assert np.allclose(rdm_a[iu], want_a, atol=1e-12)
    assert np.allclose(rdm_b[iu], want_b, atol=1e-12)
    # ranks A (2, 3.5, 6, 1, 5, 3.5), B (3.5, 2, 3.5, 1, 6, 5): sum of products of deviations 10, squares 17
    assert rsa(rdm_a, rdm_b) == pytest.approx(10 / 17, abs=1e-12)
    assert rsa(rdm_a, rdm_b, method="pearson") == pytest.approx(np.corrcoef(want_a, want_b)[0, 1], abs=1e-12)
    assert rsa(rdm_a, rdm_a) == pytest.approx(1.0, abs=1e-12)


def test_rdm_from_the_gram_matrix_equals_one_minus_corrcoef():
    rng = np.random.default_rng(3)
    x = rng.normal(loc=2.0, size=(30, 8))
    assert np.allclose(Representation.from_features(x, np.arange(30)).rdm(), 1 - np.corrcoef(x), atol=1e-12)


def test_stored_form_round_trips_and_keeps_no_features():
    rng = np.random.default_rng(4)
    x = np.abs(rng.normal(size=(50, 16)))  # like post-ReLU features: a common offset
    rep = Representation.from_features(x, np.arange(100, 150))
    arrays = rep.to_arrays()
    assert set(arrays) == {"image_ids", "gram_upper", "sums", "n_features"}
    back = Representation.from_arrays(arrays)
    assert np.array_equal(back.image_ids, rep.image_ids)
    assert np.allclose(back.rdm(), rep.rdm(), atol=1e-5)
    assert np.allclose(back.centred_gram(), rep.centred_gram(), atol=1e-4 * np.abs(rep.gram).max())


def test_similarity_matrices_agree_with_the_pairwise_functions():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, 10))
    feats = {"a": base, "b": base @ rng.normal(size=(10, 10)) + rng.normal(size=(40, 10)),
             "c": rng.normal(size=(40, 6))}
    feats["c"][7] = 1.0  # an image with constant features in one network: left out of the RSA
    reps = {k: Representation.from_features(v, np.arange(40)) for k, v in feats.items()}
    out = similarity_matrices(reps)
    keep = np.delete(np.arange(40), 7)
    for i, p in enumerate(feats):
        for j, q in enumerate(feats):
            assert out["cka"][i, j] == pytest.approx(linear_cka(feats[p], feats[q]), abs=1e-6)
            want = rsa(reps[p].subset(keep).rdm(), reps[q].subset(keep).rdm())
            assert out["rsa"][i, j] == pytest.approx(want, abs=1e-6)
    assert out["rsa"][0, 1] > out["rsa"][0, 2]


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ValueError, match="2-d array"):
        Representation.from_features(np.zeros(5), np.arange(5))
    with pytest.raises(ValueError, match="method"):
        rsa(np.zeros((4, 4)), np.zeros((4, 4)), method="kendall")
    reps = {"a": Representation.from_features(np.eye(4), np.arange(4)),
            "b": Representation.from_features(np.eye(4), np.arange(1, 5))}
    with pytest.raises(ValueError, match="other images"):
        similarity_matrices(reps)


def test_ranks_match_scipy_with_ties():
    from scipy.stats import rankdata

    values = np.array([0.3, 0.1, 0.3, 0.9, 0.1, 0.1, 0.5])
    assert np.array_equal(ranks(values), rankdata(values))
    rng = np.random.default_rng(6)
    many = rng.integers(0, 50, size=1000).astype(float)
    assert np.array_equal(ranks(many), rankdata(many))


def test_compare_on_subsets_loads_each_network_once():
    rng = np.random.default_rng(7)
    feats = {k: rng.normal(size=(30, 5)) for k in "abc"}
    reps = {k: Representation.from_features(v, np.arange(30)) for k, v in feats.items()}
    loads = []

    def load(name):
        loads.append(name)
        return reps[name]

    part = np.arange(0, 30, 2)
    out = compare(list(reps), load, {"all": None, "even": part})
    assert loads == ["a", "b", "c"]
    assert out["even"]["cka"][0, 2] == pytest.approx(linear_cka(feats["a"][part], feats["c"][part]), abs=1e-6)
    assert out["all"]["rsa"][1, 2] == pytest.approx(rsa(reps["b"].rdm(), reps["c"].rdm()), abs=1e-6)
