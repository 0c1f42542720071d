"""The data room: the DataModule and its parts (sources, tables, image folders, splits, loaders)."""

from logitlab import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "ClassificationDataModule": "logitlab.data.datamodule",
        "ImageFolderDataModule": "logitlab.data.images",
    },
)
