"""Dataset sources, manifests and the decode cache."""

from audit.data.base import Dataset, DatasetError, Split
from audit.data.sources import list_datasets, load_dataset

__all__ = ["Dataset", "DatasetError", "Split", "list_datasets", "load_dataset"]
