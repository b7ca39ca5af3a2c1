"""A run's trained network as an MLflow logged model: the Models column, `runs:/<run_id>/model`.

What `mlflow.pytorch.log_model` does, done through the run's own MlflowClient so that no
global tracking URI or active run is involved: a logged model in the run's experiment with
the run as its source, the network saved in MLflow's safe `pt2` format (torch.export, no
pickle: it loads without resbench's code), the run's latest metrics linked to the model,
and the model listed among the run's outputs. Pip requirements are given, not inferred:
inference imports and runs the model in a subprocess, which costs seconds per run.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import mlflow.pytorch
import numpy as np
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from tracking import internals, names


def requirements() -> list[str]:
    """What loading the model needs: torch, at the version that trained it (MLflow adds itself)."""
    return [f"torch=={torch.__version__.split('+')[0]}"]


def log_model(
    client: MlflowClient,
    run_id: str,
    model: torch.nn.Module,
    input_example: np.ndarray,
    step: int = 0,
) -> str:
    """Log `model` (in eval mode, on the CPU) as the run's model; returns the logged model's id.

    `input_example` is a batch of at least 2 network inputs (float32, N x C x H x W), so the
    exported model takes any batch size; it is stored with the model and gives its signature.
    """
    if input_example.ndim < 2 or len(input_example) < 2:
        raise ValueError(
            "input_example: a batch of at least 2 inputs, so the batch size stays free"
        )
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=names.MODEL_NAME,
        source_run_id=run_id,
        params=run.data.params,
        model_type="pytorch",
    )
    try:
        net = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
        # the signature from one plain forward pass, not MLflow's pyfunc wrapper
        with torch.no_grad():
            output = net(torch.from_numpy(input_example)).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / names.MODEL_NAME
            meta = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run_id,
                model_id=logged.model_id,
            )
            mlflow.pytorch.save_model(
                net,
                str(path),
                mlflow_model=meta,
                input_example=input_example,
                signature=infer_signature(input_example, output),
                pip_requirements=requirements(),
                serialization_format="pt2",
            )
            client.log_model_artifacts(logged.model_id, str(path))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
        # The model's page shows the numbers it was chosen on: the run's latest value of each
        # metric.
        latest = [
            Metric(m.key, m.value, m.timestamp, m.step, model_id=logged.model_id, run_id=run_id)
            for m in internals.latest_metrics(run)
            if not m.key.startswith(names.SYSTEM_METRICS_PREFIX)
        ]
        for i in range(0, len(latest), 1000):  # MLflow's per-call metric limit
            client.log_batch(run_id, metrics=latest[i : i + 1000])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id
