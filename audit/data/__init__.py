"""Dataset sources, manifests and the decode cache. Importing the package registers the built-in datasets
(`audit.data.registry`): the array datasets and ImageFolder trees (`sources`), ImageNet (`imagenet`), and
tables and shards (`table_sources`)."""

from audit.data import sources, imagenet, table_sources  # noqa: F401, I001  (each registers its datasets, in this order)
from audit.data.base import Dataset, DatasetError, Split
from audit.data.registry import list_datasets, load_dataset, register_dataset, unregister_dataset

__all__ = ["Dataset", "DatasetError", "Split", "list_datasets", "load_dataset", "register_dataset",
           "unregister_dataset"]
