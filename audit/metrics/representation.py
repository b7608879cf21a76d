"""Representational similarity between networks: RSA (meding2022 A.3) and linear CKA.

Both compare what two networks compute for the same images, from their penultimate
representations. Nothing here sees the raw features after capture: a network is kept as a
`Representation`, the Gram matrix of its features (X Xᵀ) with each image's feature sum, from
which both the RDM and the centred Gram matrix follow exactly. Pure numpy.

RSA as meding2022 A.3 (Fig. 7) applies it: each network's representational dissimilarity
matrix (RDM) is 1 − the Pearson correlation between the representations of two images
(Kriegeskorte et al. 2008), and two networks are compared by the correlation of their RDMs'
upper triangles, "a correlation index between −1 and 1". The paper ran it with the thingsvision
toolkit (meding2022 §2, "Software") and does not name the correlation of the RDMs; thingsvision's
default is Pearson's r. We use Spearman's ρ, which assumes no linear relation between two
networks' dissimilarities (Kriegeskorte et al. 2008); `rsa(..., method="pearson")` gives the
toolkit's default. The paper correlates the last fully connected layer; we use its input, the
penultimate representation, which every network has whatever its number of classes.

Linear CKA (Kornblith et al. 2019, eq. 2): for column-centred features X (n x p) and Y (n x q),
CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F) with K = XXᵀ, L = YYᵀ
and H = I − 11ᵀ/n. It is invariant to orthogonal transforms and isotropic scaling of either
representation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RSA_METHODS = ("spearman", "pearson")


@dataclass
class Representation:
    """One network's penultimate representation of a set of images, kept as its Gram matrix.

    Attributes
    ----------
    image_ids : ndarray of int64, shape (n,)
    gram : ndarray of float64 (float32 as read back from the store), shape (n, n)
        K = X Xᵀ of the uncentred features X (n images x n_features).
    sums : ndarray of float64, shape (n,)
        Each image's sum of features (row sums of X), for the RDM.
    n_features : int
    """

    image_ids: np.ndarray
    gram: np.ndarray
    sums: np.ndarray
    n_features: int

    @classmethod
    def from_features(cls, features: np.ndarray, image_ids) -> Representation:
        """The Gram matrix of `features` (n_images x n_features), computed in float64."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2 or x.shape[1] < 1:
            raise ValueError(f"features must be a 2-d array with at least 2 images, got shape {x.shape}")
        ids = np.asarray(image_ids, dtype=np.int64)
        if ids.shape != (len(x),):
            raise ValueError(f"{len(ids)} image ids for {len(x)} rows of features")
        return cls(ids, x @ x.T, x.sum(axis=1), int(x.shape[1]))

    def subset(self, positions) -> Representation:
        """The representation of the images at `positions` (indices into image_ids)."""
        pos = np.asarray(positions, dtype=np.int64)
        return Representation(self.image_ids[pos], self.gram[np.ix_(pos, pos)], self.sums[pos], self.n_features)

    def varies(self) -> np.ndarray:
        """Per image: whether its features are not all equal (its correlation with others is defined)."""
        return np.diag(self.gram) - self.sums**2 / self.n_features > 1e-12 * np.maximum(np.diag(self.gram), 1e-300)

    def centred_gram(self) -> np.ndarray:
        """HKH: the Gram matrix of the features centred over images (Kornblith et al. 2019)."""
        return centre_gram(self.gram)

    def rdm(self) -> np.ndarray:
        """1 − Pearson correlation between images (meding2022 A.3), from the Gram matrix.

        With m_i the mean of image i's features, (x_i − m_i)·(x_j − m_j) = K_ij − s_i s_j / p.
        An image whose features are all equal has no correlation; its entries are NaN.
        """
        cov = self.gram - np.outer(self.sums, self.sums) / self.n_features
        scale = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(scale, scale)
        out = 1.0 - np.clip(corr, -1.0, 1.0)
        np.fill_diagonal(out, 0.0)
        return out

    # the store's form: the upper triangle (diagonal included) in float32, the sums and ids beside it
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays to store (representation/<model>.npz); never the features themselves."""
        upper = np.triu_indices(len(self.image_ids))
        return {"image_ids": self.image_ids, "gram_upper": self.gram[upper].astype(np.float32),
                "sums": self.sums, "n_features": np.array(self.n_features, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays) -> Representation:
        """The inverse of `to_arrays` (the Gram matrix comes back in float32, as stored)."""
        ids = np.asarray(arrays["image_ids"], dtype=np.int64)
        n = len(ids)
        upper = np.asarray(arrays["gram_upper"], dtype=np.float32)
        if upper.shape != (n * (n + 1) // 2,):
            raise ValueError(f"a stored Gram triangle of {upper.size} values does not fit {n} images")
        gram = np.zeros((n, n), dtype=np.float32)
        gram[np.triu_indices(n)] = upper
        gram = gram + np.triu(gram, 1).T
        return cls(ids, gram, np.asarray(arrays["sums"], dtype=np.float64), int(arrays["n_features"]))


def centre_gram(gram: np.ndarray) -> np.ndarray:
    """H K H with H = I − 11ᵀ/n, without forming H."""
    k = np.asarray(gram, dtype=np.float64)
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same images (rows), Kornblith et al. 2019 eq. 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need two 2-d arrays with the same number of rows, got {x.shape} and {y.shape}")
    return cka_from_grams(x @ x.T, y @ y.T)


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (L of the paper)
    """Linear CKA from two (uncentred) Gram matrices: ⟨HKH, HLH⟩ / (‖HKH‖ ‖HLH‖)."""
    kc, lc = centre_gram(k), centre_gram(l)
    return _cosine(kc.ravel(), lc.ravel())


def rsa(rdm_a: np.ndarray, rdm_b: np.ndarray, *, method: str = "spearman") -> float:
    """The correlation of two RDMs' upper triangles (diagonal left out): meding2022 A.3.

    Pairs of images with an undefined dissimilarity (NaN) in either RDM are left out.
    """
    if method not in RSA_METHODS:
        raise ValueError(f"method must be one of {RSA_METHODS}, got {method!r}")
    a, b = np.asarray(rdm_a, dtype=np.float64), np.asarray(rdm_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(f"need two square RDMs of the same size (at least 3 images), got {a.shape} and {b.shape}")
    upper = np.triu_indices(len(a), 1)
    ua, ub = a[upper], b[upper]
    ok = ~(np.isnan(ua) | np.isnan(ub))
    if method == "spearman":
        ua, ub = ranks(ua[ok]), ranks(ub[ok])
    else:
        ua, ub = ua[ok], ub[ok]
    return float(np.dot(_standardise(ua), _standardise(ub)))


def similarity_matrices(reps: dict[str, Representation], *, method: str = "spearman") -> dict[str, np.ndarray]:
    """RSA and linear CKA between every pair of networks, as {"rsa": M x M, "cka": M x M} (order of `reps`)."""
    return compare(list(reps), reps.__getitem__, {"all": None}, method=method)["all"]


def compare(names: list[str], load: Callable[[str], Representation], subsets: dict, *,
            method: str = "spearman") -> dict[str, dict[str, np.ndarray]]:
    """RSA and linear CKA between every pair of networks on each subset of the images.

    Parameters
    ----------
    names : list of str
    load : callable
        name -> Representation; called once per network (twice when some image's features are
        constant in some network), so at most one Gram matrix is in memory at a time.
    subsets : dict
        {subset name: positions into the representations' images, or None for all of them}.
    method : {"spearman", "pearson"}
        How the RDMs are correlated (see the module's docstring).

    Returns
    -------
    {subset: {"rsa": M x M, "cka": M x M}}. All networks must cover the same images in the same
    order. Images whose features are constant in some network (no correlation defined) are left
    out of the RSA. Each network is prepared once per subset (its RDM triangle ranked, its centred
    Gram matrix made a unit vector, both kept in float32), so M networks cost M preparations and
    one M x M product per measure.
    """
    if method not in RSA_METHODS:
        raise ValueError(f"method must be one of {RSA_METHODS}, got {method!r}")
    if not names:
        raise ValueError("no representations to compare")
    vectors = {s: {"rsa": [], "cka": []} for s in subsets}
    ids, varies = None, []
    for name in names:
        rep = load(name)
        if ids is None:
            ids = rep.image_ids
            positions = {s: np.arange(len(ids)) if p is None else np.asarray(p, dtype=np.int64) for s, p in subsets.items()}
            for s, p in positions.items():
                if len(p) < 3:
                    raise ValueError(f"RSA needs at least 3 images, the subset {s!r} has {len(p)}")
        elif not np.array_equal(rep.image_ids, ids):
            raise ValueError(f"{name} covers other images than {names[0]}")
        varies.append(rep.varies())
        for s, p in positions.items():
            sub = rep if subsets[s] is None else rep.subset(p)
            vectors[s]["cka"].append(_triangle_unit(sub.centred_gram()))
            vectors[s]["rsa"].append(_rsa_vector(sub, method) if varies[-1].all() else None)
    common = np.logical_and.reduce(varies)
    if not common.all():  # some image has no correlation in some network: the RSA leaves it out everywhere
        for i, name in enumerate(names):
            rep = load(name)
            for s, p in positions.items():
                vectors[s]["rsa"][i] = _rsa_vector(rep.subset(p[common[p]]), method)
    return {s: {m: _pairwise(v) for m, v in by_measure.items()} for s, by_measure in vectors.items()}


def _rsa_vector(rep: Representation, method: str) -> np.ndarray:
    """The RDM's upper triangle, ranked for Spearman, standardised to a unit vector (float32)."""
    tri = rep.rdm()[_upper(len(rep.image_ids))]
    return _standardise(ranks(tri) if method == "spearman" else tri).astype(np.float32)


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank (as scipy.stats.rankdata), by one quicksort."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v)
    sv = v[order]
    first = np.r_[True, sv[1:] != sv[:-1]]
    dense = np.cumsum(first)
    bounds = np.r_[np.flatnonzero(first), len(v)]
    out = np.empty(len(v))
    out[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return out


@functools.lru_cache(maxsize=4)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _triangle_unit(sym: np.ndarray) -> np.ndarray:
    """A symmetric matrix as a unit float32 vector whose dot products are the matrices' Frobenius products."""
    off = sym[_upper(len(sym))] * np.sqrt(2.0)
    return _unit(np.concatenate([off, np.diag(sym)])).astype(np.float32)


def _standardise(v: np.ndarray) -> np.ndarray:
    return _unit(v - v.mean())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(_unit(a), _unit(b)))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else np.full_like(v, np.nan)


def _pairwise(unit_vectors: list[np.ndarray], block: int = 1 << 18) -> np.ndarray:
    """All dot products of float32 unit vectors, summed in float64 block by block."""
    stack = np.stack(unit_vectors)
    out = np.zeros((len(stack), len(stack)))
    for start in range(0, stack.shape[1], block):
        part = stack[:, start : start + block].astype(np.float64)
        out += part @ part.T
    return np.clip(out, -1.0, 1.0)
