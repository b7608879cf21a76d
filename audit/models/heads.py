"""Label spaces: how a pretrained model's outputs become decisions over the dataset's classes.

`resolve_head` picks one of HEADS: ImageNet-1k itself, a subset of its synsets (logits
restricted), a mapping file (probabilities aggregated as model-vs-human does), or a linear
probe on frozen features. Pure functions and one estimator; no model loading, no store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADS = ("imagenet", "subset", "mapping", "linear_probe", "native")


class LabelSpaceError(ValueError):
    """The dataset's classes cannot be matched to the model's outputs; the message says what to do."""


class MappingFileError(LabelSpaceError):
    """A mapping file that cannot be read or names classes or indices that do not exist."""


@dataclass(frozen=True)
class HeadPlan:
    """How outputs become decisions.

    kind : one of HEADS ("native": the model's own classifier already predicts the dataset's classes)
    class_indices : per dataset class, its ImageNet-1k indices (imagenet, subset, mapping); else None
    mapping_file : the mapping file, for kind "mapping"
    """

    kind: str
    class_indices: tuple[tuple[int, ...], ...] | None = None
    mapping_file: str | None = None

    def describe(self) -> dict:
        d: dict = {"head": self.kind}
        if self.mapping_file is not None:
            d["mapping_file"] = self.mapping_file
        return d

    @property
    def needs_features(self) -> bool:
        return self.kind == "linear_probe"

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities over the dataset's classes, shape (n_images, n_classes); rows sum to 1.

        imagenet, native: softmax of the logits. subset: softmax of the logits restricted to the
        dataset's synsets (ImageNet-R/-A protocol). mapping: the mean of the 1000-way softmax over each
        class's indices (model-vs-human's `ImageNetProbabilitiesTo16ClassesMapping`, whose decision is
        the argmax of these means), renormalised to sum to 1 so that true_prob and top_prob stay
        probabilities; the renormalisation does not change the argmax.
        """
        logits = np.asarray(logits, dtype=np.float64)
        if self.kind in ("imagenet", "native"):
            return softmax(logits)
        if self.kind == "subset":
            idx = [c[0] for c in self.class_indices]
            return softmax(logits[:, idx])
        if self.kind == "mapping":
            p = softmax(logits)
            agg = np.stack([p[:, list(c)].mean(axis=1) for c in self.class_indices], axis=1)
            return agg / agg.sum(axis=1, keepdims=True)
        raise ValueError(f"head {self.kind!r} takes features, not logits; use LinearProbe")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def decisions_from_probabilities(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, true_prob, top_prob), each of shape (n_images,), from probs of shape (n_images, n_classes)."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs has shape {probs.shape} but there are {len(labels)} labels")
    predicted = probs.argmax(axis=1)
    return predicted, probs[np.arange(len(labels)), labels], probs.max(axis=1)


# --------------------------------------------------------------------------- resolution
def _imagenet_index() -> dict[str, int]:
    from audit.data.imagenet import imagenet_synset_index

    return imagenet_synset_index()


def resolve_head(
    classes: list[str],
    *,
    mapping: str | Path | None = None,
    probe: bool = True,
    force_probe: bool = False,
    imagenet_outputs: bool = True,
    has_train: bool = True,
    dataset_name: str = "the dataset",
) -> HeadPlan:
    """Choose how a model's outputs map onto `classes`.

    In order: a linear probe when forced or when the model has no ImageNet-1k classifier; the
    mapping file when given; "imagenet" when `classes` are the 1,000 synsets in index order;
    "subset" when every class is an ImageNet-1k synset; else a linear probe when allowed.
    """
    index = _imagenet_index()
    reason = None
    if not (force_probe or not imagenet_outputs):
        if mapping is not None:
            return HeadPlan("mapping", read_mapping(mapping, classes), mapping_file=str(mapping))
        if len(classes) == len(index) and all(index.get(c) == i for i, c in enumerate(classes)):
            return HeadPlan("imagenet", tuple((i,) for i in range(len(classes))))
        unknown = [c for c in classes if c not in index]
        if not unknown:
            return HeadPlan("subset", tuple((index[c],) for c in classes))
        reason = (f"{len(unknown)} of its {len(classes)} classes ({', '.join(map(repr, unknown[:3]))}"
                  f"{', ...' if len(unknown) > 3 else ''}) are not ImageNet-1k synsets")
    else:
        reason = "the model has no ImageNet-1k classifier" if not imagenet_outputs else "a probe was asked for"
    if not probe:
        raise LabelSpaceError(
            f"{dataset_name}: cannot map the model's outputs to the classes: {reason}; allow the linear probe "
            "(drop --no-probe) or give --label-map FILE, a mapping from classes to ImageNet indices")
    if not has_train:
        raise LabelSpaceError(
            f"{dataset_name}: {reason}, and a linear probe needs a training split, which it lacks; "
            "add a train/ folder, or give --label-map FILE, a mapping from classes to ImageNet indices "
            "(CSV rows CLASS,INDEX; see the README)")
    return HeadPlan("linear_probe")


def read_mapping(path: str | Path, classes: list[str]) -> tuple[tuple[int, ...], ...]:
    """Per class of `classes`, the ImageNet-1k indices that a mapping file assigns to it.

    Formats: JSON or YAML `{class: [index or WordNet id, ...]}` (a single value is allowed), or a
    text/CSV file of `CLASS,INDEX` rows (comma or tab; one class may take several rows, and INDEX
    may list several indices separated by spaces). Every dataset class needs at least one index;
    a class the dataset does not have is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise MappingFileError(f"mapping file {path} does not exist")
    raw = _read_mapping_file(path)
    index = _imagenet_index()
    known = set(classes)
    out: dict[str, list[int]] = {}
    for cls, values in raw.items():
        if cls not in known:
            raise MappingFileError(
                f"mapping file {path} names class {cls!r}, which the dataset does not have; "
                f"its classes are: {', '.join(map(repr, classes[:12]))}{', ...' if len(classes) > 12 else ''}")
        for v in values:
            out.setdefault(cls, []).append(_to_index(v, path, cls, index))
    missing = [c for c in classes if not out.get(c)]
    if missing:
        raise MappingFileError(f"mapping file {path} gives no ImageNet indices for {len(missing)} of "
                               f"{len(classes)} classes: {', '.join(map(repr, missing[:5]))}"
                               f"{', ...' if len(missing) > 5 else ''}")
    return tuple(tuple(dict.fromkeys(out[c])) for c in classes)


def _to_index(value, path: Path, cls: str, index: dict[str, int]) -> int:
    if isinstance(value, str) and value.strip() in index:
        return index[value.strip()]
    try:
        i = int(str(value).strip())
    except ValueError:
        raise MappingFileError(f"mapping file {path}: class {cls!r} maps to {value!r}, which is neither an "
                               "ImageNet-1k index (0-999) nor a WordNet id") from None
    if not 0 <= i < len(index):
        raise MappingFileError(f"mapping file {path}: class {cls!r} maps to index {i}, outside 0..999")
    return i


def _read_mapping_file(path: Path) -> dict[str, list]:
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix in (".json", ".yaml", ".yml"):
        try:
            if suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # json and yaml raise their own types
            raise MappingFileError(f"mapping file {path} is not valid {suffix[1:].upper()}: {exc}") from None
        if not isinstance(data, dict):
            raise MappingFileError(f"mapping file {path} must hold a mapping {{class: [indices]}}, "
                                   f"found {type(data).__name__}")
        return {str(k): (v if isinstance(v, list) else [v]) for k, v in data.items()}
    out: dict[str, list] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        if sep not in line:
            raise MappingFileError(f"mapping file {path} line {n}: expected CLASS,INDEX, found {line!r}")
        cls, values = line.rsplit(sep, 1)
        tokens = values.split()
        if n == 1 and tokens and not (tokens[0].isdigit() or tokens[0] in _imagenet_index()):
            continue  # a header row
        out.setdefault(cls.strip(), []).extend(tokens)
    if not out:
        raise MappingFileError(f"mapping file {path} holds no CLASS,INDEX rows")
    return out


# --------------------------------------------------------------------------- linear probe
def probe_indices(n_train: int, size: int | None, *, random_state: int = 0) -> np.ndarray:
    """A fixed, seeded subset of the training split for the probe (all of it when `size` is None)."""
    if size is None or size >= n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(random_state).permutation(n_train)[:size])


class LinearProbe:
    """Multinomial logistic regression on standardised frozen features (scikit-learn).

    Parameters
    ----------
    C : inverse L2 regularisation strength
    max_iter : L-BFGS iterations
    random_state : seed (L-BFGS itself is deterministic)
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 300, random_state: int = 0):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, features: np.ndarray, labels: np.ndarray, *, n_classes: int | None = None) -> LinearProbe:
        """Fit on features of shape (n_images, n_features) and labels of shape (n_images,)."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(labels)
        if len(features) != len(labels):
            raise ValueError(f"features has {len(features)} rows but labels has {len(labels)}")
        if len(np.unique(labels)) < 2:
            raise ValueError("the probe's training subset holds a single class; it needs at least two")
        self.scaler_ = StandardScaler().fit(features)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(self.scaler_.transform(features), labels)
        self.n_classes_ = int(n_classes if n_classes is not None else labels.max() + 1)
        self.n_iter_ = int(np.max(self.model_.n_iter_))
        self.train_accuracy_ = float((self.model_.predict(self.scaler_.transform(features)) == labels).mean())
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities over all n_classes (classes absent from the probe's training subset get 0)."""
        p = self.model_.predict_proba(self.scaler_.transform(np.asarray(features, dtype=np.float32)))
        out = np.zeros((len(p), self.n_classes_), dtype=np.float64)
        out[:, self.model_.classes_] = p
        return out
