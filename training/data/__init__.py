"""Dataset loading, splitting and normalisation for the training engine."""

from training.data.catalog import CATALOG, DatasetInfo, dataset_info
from training.data.loading import DataSources, Normalisation, PreparedData, prepare

__all__ = [
    "CATALOG", "DataSources", "DatasetInfo", "Normalisation", "PreparedData", "dataset_info",
    "prepare",
]
