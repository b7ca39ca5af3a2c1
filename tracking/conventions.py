"""MLflow's own conventions, filled in from resbench's plain values, where MLflow's UI looks.

- the experiment kind, so a click on the experiment opens its training runs (not the GenAI
overview);
- the standard source tags (`mlflow.source.*`): the runs table's Source column;
- the training and test sets as dataset inputs (`log_inputs`): the Dataset column and filter.

resbench's own `resbench.*` tags stay as they are: the report and run identity read those.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.schema import TensorDatasetSchema
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Dataset, DatasetInput, Experiment, InputTag
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from tracking import internals, names


def experiment_tags() -> dict[str, str]:
    """Tags every resbench experiment carries (set on creation, and again whenever it is opened)."""
    return {names.TAG_EXPERIMENT_KIND: names.EXPERIMENT_KIND}


def mark_experiment(client: MlflowClient, experiment: Experiment) -> None:
    """Give an existing experiment resbench's experiment tags: one made before resbench set them,
    or one that MLflow's UI marked with a kind it inferred."""
    for key, value in experiment_tags().items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)


@dataclass(frozen=True)
class Source:
    """Where a run's code came from, as MLflow's standard tags record it."""

    name: str  # what ran, e.g. "resbench run"
    commit: str  # git commit of the checkout ("unknown" outside git)
    repo_url: str = ""  # the checkout's remote, where there is one

    def tags(self) -> dict[str, str]:
        tags = {names.TAG_SOURCE_NAME: self.name, names.TAG_SOURCE_TYPE: names.SOURCE_TYPE}
        if self.commit and self.commit != "unknown":
            tags[names.TAG_SOURCE_COMMIT] = self.commit
        if self.repo_url:
            tags[names.TAG_SOURCE_REPO] = public_url(self.repo_url)
        return tags


def public_url(url: str) -> str:
    """`url` without any user name or token in it (a remote may be https://user:TOKEN@host/...)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


@dataclass(frozen=True)
class DataInput:
    """The data a run trained and was tested on, as plain values.

    `source` says where it came from: a URL (the official download), an absolute folder (files
    found on disk), or anything else for generated data, recorded as the generator's name.
    """

    name: str  # the data source: cifar10 | cifar10-jpeg-rebuild | cifar10-unverified | synthetic
    checksum: str  # the data checksum (resbench.data_checksum)
    source: str
    train_images: int
    test_images: int
    limit_train: int = 0  # 0 = no limit
    limit_test: int = 0


# What every split holds: CIFAR-shaped uint8 images, int64 labels (the Dataset drawer's schema).
_SCHEMA = TensorDatasetSchema(
    features=Schema([TensorSpec(np.dtype(np.uint8), (-1, 3, 32, 32), "image")]),
    targets=Schema([TensorSpec(np.dtype(np.int64), (-1,), "label")]),
)


def _source(source: str):
    if re.match(r"^https?://", source):
        return HTTPDatasetSource(public_url(source))
    if source.startswith("/"):
        return LocalArtifactDatasetSource(source)
    return CodeDatasetSource({"generator": source})


def split_digest(checksum: str, split: str, limit: int) -> str:
    """MLflow's digest for one split: a short fingerprint of the data checksum, the split and its
    limit.

    MLflow keeps one dataset per (name, digest) in an experiment, profile included, so the
    training and test sets, and each limit, need digests of their own. It starts with the
    checksum's first 8 hex digits (the full checksum is in the profile).
    """
    short = (
        checksum[:8]
        if re.fullmatch(r"[0-9a-f]{32,}", checksum)
        else hashlib.md5(checksum.encode()).hexdigest()[:8]
    )
    return f"{short}-{split}" + (f"-{limit}" if limit else "")


def dataset_inputs(data: DataInput) -> list[DatasetInput]:
    """The training and test sets of `data` as MLflow dataset inputs (contexts training,
    evaluation)."""
    source = _source(data.source)
    inputs = []
    for split, context, count, limit in (
        ("train", names.CONTEXT_TRAINING, data.train_images, data.limit_train),
        ("test", names.CONTEXT_EVALUATION, data.test_images, data.limit_test),
    ):
        profile = {"split": split, "images": count, "labels": count, "checksum": data.checksum}
        if limit:
            profile["limit"] = limit
        dataset = Dataset(
            name=data.name,
            digest=split_digest(data.checksum, split, limit),
            source_type=internals.source_type(source),
            source=source.to_json(),
            schema=json.dumps(_SCHEMA.to_dict()),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, [InputTag(names.TAG_DATASET_CONTEXT, context)]))
    return inputs
