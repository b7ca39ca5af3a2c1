"""A deliberately tiny entry for tests that train many times (kill/resume, concurrency).

Found through $RESBENCH_ENTRIES_PATH, so it never appears in the suite's own registry.
"""

from benchmarks.registry import arch, entry
from resnet.config import TrainConfig


@entry("test/tiny")
def tiny():
    """A 0.2M-parameter ResNet: one block per layer at 8-64 channels."""
    return arch(blocks=[1, 1, 1, 1], channels=[8, 16, 32, 64]), TrainConfig(epochs=3)
