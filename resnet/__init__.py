"""The paper's ResNet family, CIFAR-10 data and the training loop.

Knows nothing of MLflow or the command line: it is handed plain configs and
reports each epoch through a callback.
"""
