"""Where `reproduce` trains its (entry, seed) jobs: child processes here, or Ray tasks on a cluster.

`local` runs `resbench run` children on this machine, `jobs` at a time on each GPU given by
`devices` (each child sees only its GPU through CUDA_VISIBLE_DEVICES). `ray` submits each job
as a Ray task asking for a GPU, a fraction of one, or CPUs, to a local Ray started here or an
existing cluster; scheduling, placement, retries after a worker dies and cancellation are Ray's.
A job that fails, or whose worker dies, comes back as failed, never lost: its MLflow run is
left FAILED, KILLED or RUNNING, and the next `reproduce` trains or resumes it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from benchmarks import checkpoints
from benchmarks.runner import DataSpec, run_entry
from resnet.data import default_data_dir
from resnet.train import ExecConfig
from tracking import connect
from tracking.store import require_shared_store

KINDS = ("local", "ray")
WORKER_CHECKPOINTS = "~/.cache/resbench/checkpoints"  # on each worker of a cluster, unless told otherwise
CANCEL_GRACE_S = 30  # after Ctrl-C, how long cancelled tasks may take before they are killed outright
# the driver's MLflow credentials and TLS settings, which workers need to reach an authenticated server
FORWARDED_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                 "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                 "MLFLOW_TRACKING_CLIENT_CERT_PATH")


class ExecutorError(RuntimeError):
    """An executor option that cannot work here; the message says which and why."""


class RunFailed(RuntimeError):
    """A run that raised in its worker, as one line (the original may not survive pickling)."""


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"               # local | ray
    jobs: int = 1                     # local: runs at once on each device (on this machine without devices)
    devices: tuple[int, ...] = ()     # local: CUDA devices to spread runs over
    address: str | None = None        # ray: None starts a local Ray; "auto" or "ray://HOST:10001" joins a cluster
    gpus_per_run: float = 1.0         # ray: share of a GPU per run (0.25: four runs per GPU)
    cpus_per_run: float = 1.0         # ray: CPUs per run
    max_retries: int = 3              # ray: resubmissions of a run whose worker died

    def parallel(self, n_jobs: int) -> bool:
        """Whether `n_jobs` go to this executor rather than one after another in this process."""
        return n_jobs > 0 and (self.kind == "ray" or bool(self.devices) or (self.jobs > 1 and n_jobs > 1))


@dataclass(frozen=True)
class Work:
    """What every job of one reproduction shares: all a worker needs besides (entry, seed)."""
    uri: str
    experiment: str
    overrides: dict
    spec: DataSpec
    ex: ExecConfig
    checkpoint_dir: str | None = None


def parse_devices(text: str | None) -> tuple[int, ...]:
    """"0,1,3" -> (0, 1, 3); "" or None -> ()."""
    if not text:
        return ()
    try:
        devices = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise ExecutorError(f"--devices {text!r}: expected GPU indices such as 0,1") from None
    if min(devices) < 0 or len(set(devices)) != len(devices):
        raise ExecutorError(f"--devices {text!r}: expected distinct GPU indices such as 0,1")
    return devices


def check(cfg: ExecutorConfig, ex: ExecConfig, uri: str) -> None:
    """Refuse, before anything is created or trained, options that cannot work together."""
    if cfg.kind not in KINDS:
        raise ExecutorError(f"unknown executor {cfg.kind!r}: use {' or '.join(KINDS)}")
    if cfg.kind == "local":
        if cfg.address is not None:
            raise ExecutorError("--address is for --executor ray")
        if cfg.devices:
            _check_devices(cfg.devices, ex)
        return
    if cfg.devices:
        raise ExecutorError("--devices is for --executor local; Ray places each run on a GPU itself")
    if cfg.jobs > 1:
        raise ExecutorError("--jobs is for --executor local; with Ray, --gpus-per-run 0.25 (or --cpus-per-run) "
                            "fits several runs on one GPU (or machine)")
    if ex.device.startswith("cuda:"):
        raise ExecutorError(f"--device {ex.device}: Ray picks each run's GPU; use --device cuda or auto")
    _import_ray()
    if cfg.address is not None:  # an existing cluster: runs may land on any of its machines
        require_shared_store(uri, f"the Ray cluster at {cfg.address}")


def _check_devices(devices: tuple[int, ...], ex: ExecConfig) -> None:
    import torch

    if ex.device not in ("auto", "cuda"):
        raise ExecutorError(f"--devices spreads runs over CUDA GPUs; it cannot go with --device {ex.device}")
    have = torch.cuda.device_count()
    if max(devices) >= have:
        raise ExecutorError(f"--devices {','.join(map(str, devices))}: this machine has {have} CUDA GPU(s)")


def run(cfg: ExecutorConfig, jobs: list, work: Work, command: Callable[[object], list[str]], log) -> list[str]:
    """Train `jobs` (each with .entry, .seed, .name) on `cfg`'s executor; returns the names that failed.

    `command(job)` is the `resbench run` command line that trains a job as a child process.
    """
    if cfg.kind == "ray":
        return run_ray(cfg, jobs, work, log)
    return run_local(cfg, jobs, command, log)


# ------------------------------------------------------------------------------------------- local

def run_local(cfg: ExecutorConfig, jobs: list, command: Callable[[object], list[str]], log) -> list[str]:
    devices = [str(d) for d in cfg.devices] or [None]
    slots: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(cfg.jobs):  # round-robin, so the first runs spread over every device
        for d in devices:
            slots.put(d)
    width = len(devices) * cfg.jobs
    env = dict(os.environ)
    # `width` trainings sharing the CPU's cores rather than each taking all of them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // width)))

    def one(job) -> subprocess.CompletedProcess:
        device = slots.get()
        try:
            child_env = env if device is None else {**env, "CUDA_VISIBLE_DEVICES": device}
            return subprocess.run(command(job), env=child_env, capture_output=True, text=True)
        finally:
            slots.put(device)

    where = f" on GPU(s) {','.join(devices)}, {cfg.jobs} per GPU" if cfg.devices else ""
    log(f"training {len(jobs)} runs, {width} at a time{where}")
    failed = []
    pool = ThreadPoolExecutor(max_workers=width)
    try:
        futures = {pool.submit(one, job): job for job in jobs}
        for i, fut in enumerate(as_completed(futures), 1):
            job, proc = futures[fut], fut.result()
            if proc.returncode == 0:
                log(f"[{i}/{len(jobs)}] {(proc.stdout.strip().splitlines() or [job.name + ': finished'])[-1]}")
                continue
            failed.append(job.name)
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            log(f"error: {job.name}: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    finally:  # on Ctrl-C start nothing new; the running children got the same signal
        pool.shutdown(wait=True, cancel_futures=True)
    return failed


# --------------------------------------------------------------------------------------------- ray

def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'resbench[ray]'") from None
    return ray


@contextmanager
def _data_lock(spec: DataSpec):
    """One download per worker machine: tasks starting together on it would all fetch CIFAR-10."""
    if spec.source != "cifar10":
        yield
        return
    root = Path(spec.data_dir).expanduser() if spec.data_dir else default_data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / ".resbench-download.lock", "a+")
    except OSError:  # a read-only copy: nothing will be downloaded into it anyway
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def train_job(job, work: Work) -> str:
    """One (entry, seed), trained in this process (a Ray worker); returns its MLflow run id.

    The data is found or downloaded (MD5-checked) in the worker's own data directory, and
    checkpoints stay on the worker's disk, so a retry that lands on the same machine resumes.
    """
    tracker = connect(work.uri, work.experiment)
    with _data_lock(work.spec):
        data = work.spec.load()
    root = Path(work.checkpoint_dir or os.environ.get(checkpoints.ENV_DIR) or WORKER_CHECKPOINTS).expanduser()
    try:
        return run_entry(job.entry, tracker, data, work.spec, seed=job.seed, overrides=dict(work.overrides),
                         ex=work.ex, progress=False, checkpoint_dir=root)
    finally:
        import torch

        if torch.cuda.is_available():  # the next run on this GPU may be another process's
            torch.cuda.empty_cache()


def _in_worker(task: Callable, job, work: Work) -> str:
    try:
        return task(job, work)
    except Exception as e:  # KeyboardInterrupt (ray.cancel) passes through: the run is KILLED
        raise RunFailed((str(e).strip().splitlines() or [type(e).__name__])[0]) from None


def _for_workers(cfg: ExecutorConfig, work: Work, device: str) -> Work:
    if cfg.address is None:  # this machine: the same checkpoints as `--executor local`
        root = Path(work.checkpoint_dir or checkpoints.default_dir()).resolve()
        return replace(work, ex=replace(work.ex, device=device), checkpoint_dir=str(root))
    return replace(work, ex=replace(work.ex, device=device))


def _resources(ray, cfg: ExecutorConfig, ex: ExecConfig) -> tuple[dict, str]:
    """Ray resources per task and the device its run trains on."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if ex.device == "cpu" or (ex.device == "auto" and not gpus):
        return {"num_cpus": cfg.cpus_per_run, "num_gpus": 0}, "cpu"
    if not gpus:
        raise ExecutorError(f"--device {ex.device}: the Ray cluster has no GPUs")
    return {"num_cpus": cfg.cpus_per_run, "num_gpus": cfg.gpus_per_run}, "cuda"


def _why(ray, err: Exception, retries: int) -> str:
    if isinstance(err, RunFailed):  # ray.get raises a RayTaskError that is also a RunFailed
        return str(err.cause if isinstance(err, ray.exceptions.RayTaskError) else err)
    if isinstance(err, ray.exceptions.TaskCancelledError):
        return "cancelled"
    x = ray.exceptions
    if isinstance(err, (x.WorkerCrashedError, x.NodeDiedError, x.OutOfMemoryError, x.LocalRayletDiedError)):
        return (f"its Ray worker died ({type(err).__name__}, after {retries} retr{'y' if retries == 1 else 'ies'}); "
                f"the next reproduce resumes or reruns it")
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def _cancel(ray, refs: list, log) -> None:
    log(f"interrupted: cancelling {len(refs)} Ray task(s); running runs end KILLED and resume on the next reproduce")
    for ref in refs:
        ray.cancel(ref)  # a KeyboardInterrupt in the task: its run is marked KILLED, like Ctrl-C on `run`
    try:
        _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
    except KeyboardInterrupt:
        left = refs
    for ref in left:
        ray.cancel(ref, force=True)


def start_ray(cfg: ExecutorConfig) -> bool:
    """Join `cfg.address`, or start a local Ray; False when this process was already connected."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=cfg.address or "local", include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {cfg.address}" if cfg.address else "a local Ray"
        raise ExecutorError(f"cannot start or join {where} ({type(e).__name__}: "
                            f"{(str(e).splitlines() or [''])[0]})") from None
    return True


def run_ray(cfg: ExecutorConfig, jobs: list, work: Work, log, task: Callable = train_job) -> list[str]:
    """Each job as one Ray task running `task(job, work)`; returns the names that failed."""
    ray = _import_ray()
    started = start_ray(cfg)
    try:
        resources, device = _resources(ray, cfg, work.ex)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        options = dict(resources, max_retries=cfg.max_retries, retry_exceptions=False)
        if env:
            options["runtime_env"] = {"env_vars": env}
        remote = ray.remote(_in_worker)
        shared = _for_workers(cfg, work, device)
        share = f"{resources['num_gpus']:g} GPU" if resources["num_gpus"] else f"{resources['num_cpus']:g} CPU"
        refs: dict = {}
        failed, pending, i = [], [], 0
        try:
            for job in jobs:
                ref = remote.options(name=job.name, **options).remote(task, job, shared)
                refs[ref] = job
                pending.append(ref)
            log(f"submitted {len(jobs)} runs to Ray ({cfg.address or 'local'}), {share} each")
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)  # a timeout keeps Ctrl-C prompt
                for ref in done:
                    i, job = i + 1, refs[ref]
                    try:
                        log(f"[{i}/{len(jobs)}] {job.name}: finished run {ray.get(ref)}")
                    except (ray.exceptions.RayError, RunFailed) as err:
                        failed.append(job.name)
                        log(f"error: {job.name}: {_why(ray, err, cfg.max_retries)}")
        except KeyboardInterrupt:
            _cancel(ray, pending, log)
            raise
        return failed
    finally:
        if started:
            ray.shutdown()
