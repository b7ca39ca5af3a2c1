"""The paper's ResNet family, CIFAR-10 data and the training loop.

Knows nothing of MLflow or the command line: it is handed plain configs and
reports each epoch through a callback.
"""
from resnet.model import ConfigError, ResNet, ResNetConfig, build_model, count_parameters
from resnet.train import Diverged, EpochStats, TrainConfig, train

__all__ = [
    "ConfigError", "Diverged", "EpochStats", "ResNet", "ResNetConfig", "TrainConfig",
    "build_model", "count_parameters", "train",
]
