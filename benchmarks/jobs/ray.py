"""Jobs as Ray tasks: on a local Ray started for the command, or on an existing cluster.

A local Ray listens on 127.0.0.1 only and asks for a token (a fresh random one unless the user
has one), so neither another machine nor another user of this one can submit work to it.

Each job is one task asking for a GPU, a share of one, or CPUs; scheduling, placement, retries
after a worker dies and cancellation are Ray's. The task calls `train_job` with the job's spec,
so a run fails, resumes and is logged as anywhere else. On the worker the data is found or
downloaded in its own data directory and checkpoints stay on its disk, so a retry that lands on
the same machine resumes. A job that fails, or whose worker dies, comes back as failed, never
lost: its MLflow run is left FAILED, KILLED or RUNNING, and the next `reproduce` resumes it.
The driver's MLflow credentials reach each task as an argument (tracking.credentials.Credentials,
shown by name only), never through `runtime_env`, whose values Ray writes into its log files.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmarks.jobs import checkpoints
from benchmarks.jobs.executor import ExecutorConfig, ExecutorError, import_ray
from benchmarks.jobs.spec import JobSpec
from benchmarks.jobs.train import JobFailed, one_line, train_job
from resnet.config import ExecConfig
from tracking.credentials import Credentials, redact

WORKER_CHECKPOINTS = (
    "~/.cache/resbench/checkpoints"  # on each worker of a cluster, unless told otherwise
)
CANCEL_GRACE_S = (
    30  # after Ctrl-C, how long cancelled tasks may take before they are killed outright
)


def _in_worker(task: Callable[[JobSpec], str], spec: JobSpec, credentials: Credentials) -> str:
    """The task's body: `task(spec)` with the driver's credentials in the environment (for this task
    only) and the worker's own checkpoint folder; failures as one-line JobFailed."""
    root = spec.checkpoint_dir or os.environ.get(checkpoints.ENV_DIR) or WORKER_CHECKPOINTS
    try:
        with credentials.applied():
            return task(replace(spec, checkpoint_dir=str(Path(root).expanduser())))
    except JobFailed:
        raise
    except (
        Exception
    ) as e:  # a store error, say; KeyboardInterrupt (ray.cancel) passes: the run is KILLED
        raise JobFailed(one_line(e)) from None  # the original may not survive pickling
    finally:
        import torch

        if torch.cuda.is_available():  # the next run on this GPU may be another process's
            torch.cuda.empty_cache()


def _for_workers(cfg: ExecutorConfig, spec: JobSpec, device: str) -> JobSpec:
    if cfg.address is None:  # this machine: the same checkpoints as `--executor local`
        root = Path(spec.checkpoint_dir or checkpoints.default_dir()).resolve()
        return replace(spec, ex=replace(spec.ex, device=device), checkpoint_dir=str(root))
    return replace(spec, ex=replace(spec.ex, device=device))


def _resources(ray, cfg: ExecutorConfig, ex: ExecConfig) -> tuple[dict, str]:
    """Ray resources per task and the device its run trains on."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if ex.device == "cpu" or (ex.device == "auto" and not gpus):
        return {"num_cpus": cfg.cpus_per_run, "num_gpus": 0}, "cpu"
    if not gpus:
        raise ExecutorError(f"--device {ex.device}: the Ray cluster has no GPUs")
    return {"num_cpus": cfg.cpus_per_run, "num_gpus": cfg.gpus_per_run}, "cuda"


def _why(ray, err: Exception, retries: int) -> str:
    if isinstance(err, JobFailed):  # ray.get raises a RayTaskError that is also a JobFailed
        return str(err.cause if isinstance(err, ray.exceptions.RayTaskError) else err)
    if isinstance(err, ray.exceptions.TaskCancelledError):
        return "cancelled"
    x = ray.exceptions
    if isinstance(
        err, (x.WorkerCrashedError, x.NodeDiedError, x.OutOfMemoryError, x.LocalRayletDiedError)
    ):
        return (
            f"its Ray worker died ({type(err).__name__}, after {retries} "
            f"retr{'y' if retries == 1 else 'ies'}); "
            f"the next reproduce resumes or reruns it"
        )
    return redact(f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}")


def _cancel(ray, refs: list, log) -> None:
    log(
        f"interrupted: cancelling {len(refs)} Ray task(s); running runs end KILLED and resume on "
        f"the next reproduce"
    )
    for ref in refs:
        # a KeyboardInterrupt in the task: its run is marked KILLED, like Ctrl-C on `run`
        ray.cancel(ref)
    try:
        _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
    except KeyboardInterrupt:
        left = refs
    for ref in left:
        ray.cancel(ref, force=True)


def _require_loopback(ray) -> None:
    ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(ip).is_loopback:
        ray.shutdown()
        raise ExecutorError(
            f"the local Ray took the node address {ip}, so it would listen on every interface; "
            f"run resbench in a process that has not imported Ray before"
        )


def start_ray(cfg: ExecutorConfig) -> bool:
    """Join `cfg.address`, or start a local Ray on 127.0.0.1 with token authentication; False when
    this process was already connected."""
    ray = import_ray(local=cfg.address is None)
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=cfg.address or "local", include_dashboard=False, logging_level=logging.WARNING
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {cfg.address}" if cfg.address else "a local Ray"
        raise ExecutorError(
            redact(
                f"cannot start or join {where} ({type(e).__name__}: "
                f"{(str(e).splitlines() or [''])[0]})"
            )
        ) from None
    if cfg.address is None:
        _require_loopback(ray)
    return True


def _collect(ray, cfg: ExecutorConfig, refs: dict, log) -> list[str]:
    """Wait for every task, logging each as it ends; returns the names that failed."""
    failed, pending, i = [], list(refs), 0
    try:
        while pending:
            # a timeout keeps Ctrl-C prompt
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                i, spec = i + 1, refs[ref]
                try:
                    log(f"[{i}/{len(refs)}] {spec.name}: finished run {ray.get(ref)}")
                except (ray.exceptions.RayError, JobFailed) as err:
                    failed.append(spec.name)
                    log(f"error: {spec.name}: {_why(ray, err, cfg.max_retries)}")
    except KeyboardInterrupt:
        _cancel(ray, pending, log)
        raise
    return failed


def run_ray(
    cfg: ExecutorConfig, specs: list[JobSpec], log, task: Callable[[JobSpec], str] = train_job
) -> list[str]:
    """Each spec as one Ray task running `task(spec)`; returns the names that failed."""
    ray = import_ray(local=cfg.address is None)
    started = start_ray(cfg)
    try:
        resources, device = (
            _resources(ray, cfg, specs[0].ex) if specs else ({"num_cpus": 1, "num_gpus": 0}, "cpu")
        )
        credentials = Credentials.from_environ()
        options = dict(resources, max_retries=cfg.max_retries, retry_exceptions=False)
        remote = ray.remote(_in_worker)
        share = (
            f"{resources['num_gpus']:g} GPU"
            if resources["num_gpus"]
            else f"{resources['num_cpus']:g} CPU"
        )
        refs: dict = {}
        try:
            for spec in specs:
                refs[
                    remote.options(name=spec.name, **options).remote(
                        task, _for_workers(cfg, spec, device), credentials
                    )
                ] = spec
            log(f"submitted {len(specs)} runs to Ray ({cfg.address or 'local'}), {share} each")
        except KeyboardInterrupt:
            _cancel(ray, list(refs), log)
            raise
        return _collect(ray, cfg, refs, log)
    finally:
        if started:
            ray.shutdown()
