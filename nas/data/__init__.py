"""Real datasets in memory (digits, Fashion-MNIST, CIFAR-10, image folders, .npz), seeded
train/validation splits, and a fast batch iterator."""

from nas.data.datasets import (
    DataError,
    ImageData,
    download_file,
    list_datasets,
    load_dataset,
    register_dataset,
)
from nas.data.loader import Splits, TensorLoader, split, subset

__all__ = ["DataError", "ImageData", "Splits", "TensorLoader", "download_file", "list_datasets",
           "load_dataset", "register_dataset", "split", "subset"]
