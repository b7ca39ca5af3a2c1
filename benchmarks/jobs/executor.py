"""Where `reproduce` trains its jobs: the placement options (`ExecutorConfig`) and their checks.

`local` (jobs/local.py) trains in this process, or as child processes on this machine, `jobs`
at a time on each GPU of `devices`; `ray` (jobs/ray.py) submits each job as a Ray task to a
local Ray or an existing cluster. Options that cannot work together are refused here, before
anything is created or trained, a Ray cluster without token authentication included: anyone
who reaches an open cluster runs code on it (and Ray before 2.52 ignores RAY_AUTH_MODE).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from resnet.config import ExecConfig
from tracking.store import require_shared_store

KINDS = ("local", "ray")
RAY_AUTH_SINCE = (2, 52)  # the first Ray that honours RAY_AUTH_MODE=token


class ExecutorError(RuntimeError):
    """An executor option that cannot work here; the message says which and why."""


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"  # local | ray
    jobs: int = 1  # local: runs at once on each device (on this machine without devices)
    devices: tuple[int, ...] = ()  # local: CUDA devices to spread runs over
    address: str | None = (
        None  # ray: None starts a local Ray; "auto" or "ray://HOST:10001" joins a cluster
    )
    gpus_per_run: float = 1.0  # ray: share of a GPU per run (0.25: four runs per GPU)
    cpus_per_run: float = 1.0  # ray: CPUs per run
    max_retries: int = 3  # ray: resubmissions of a run whose worker died

    def parallel(self, n_jobs: int) -> bool:
        """Whether `n_jobs` go to this executor rather than one after another in this process."""
        return n_jobs > 0 and (
            self.kind == "ray" or bool(self.devices) or (self.jobs > 1 and n_jobs > 1)
        )


def parse_devices(text: str | None) -> tuple[int, ...]:
    """ "0,1,3" -> (0, 1, 3); "" or None -> ()."""
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
        raise ExecutorError(
            "--devices is for --executor local; Ray places each run on a GPU itself"
        )
    if cfg.jobs > 1:
        raise ExecutorError(
            "--jobs is for --executor local; with Ray, --gpus-per-run 0.25 (or --cpus-per-run) "
            "fits several runs on one GPU (or machine)"
        )
    if ex.device.startswith("cuda:"):
        raise ExecutorError(
            f"--device {ex.device}: Ray picks each run's GPU; use --device cuda or auto"
        )
    if cfg.address is None:  # a local Ray: imported when it starts, set to stay on this machine
        if importlib.util.find_spec("ray") is None:
            import_ray()  # the error saying how to install it
        return
    ray = import_ray()  # an existing cluster: runs may land on any of its machines
    require_shared_store(uri, f"the Ray cluster at {cfg.address}")
    _require_token_auth(cfg.address, ray.__version__)


def ray_auth_problem(environ=None) -> str | None:
    """Why this process would talk to a Ray cluster without token authentication; None when it is
    on.

    On means RAY_AUTH_MODE=token and a token where Ray looks for one: RAY_AUTH_TOKEN, else the
    file RAY_AUTH_TOKEN_PATH names, else ~/.ray/auth_token.
    """
    environ = os.environ if environ is None else environ
    mode = environ.get("RAY_AUTH_MODE", "")
    if mode.strip().lower() != "token":
        return f"RAY_AUTH_MODE is {mode!r}" if mode else "RAY_AUTH_MODE is not set"
    if environ.get("RAY_AUTH_TOKEN", "").strip():
        return None
    path = Path(
        environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    ).expanduser()
    try:
        if path.read_text().strip():
            return None
    except OSError:
        pass
    return f"no token in RAY_AUTH_TOKEN or {path}"


def _require_token_auth(address: str, version: str) -> None:
    have = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if have < RAY_AUTH_SINCE:
        raise ExecutorError(
            f"--address {address}: Ray {version} has no token authentication, so anyone who "
            f"reaches the cluster runs code on it; pip install -U 'resbench[ray]' (Ray >= 2.52)"
        )
    why = ray_auth_problem()
    if why:
        raise ExecutorError(
            f"--address {address}: Ray token authentication is off ({why}), so anyone who reaches "
            f"the cluster runs code on it; export RAY_AUTH_MODE=token here and on the cluster, "
            f"with "
            f"its token in ~/.ray/auth_token or RAY_AUTH_TOKEN (`ray get-auth-token --generate`)"
        )


def _check_devices(devices: tuple[int, ...], ex: ExecConfig) -> None:
    import torch

    if ex.device not in ("auto", "cuda"):
        raise ExecutorError(
            f"--devices spreads runs over CUDA GPUs; it cannot go with --device {ex.device}"
        )
    have = torch.cuda.device_count()
    if max(devices) >= have:
        raise ExecutorError(
            f"--devices {','.join(map(str, devices))}: this machine has {have} CUDA GPU(s)"
        )


# Ray's own switch that makes this machine's Ray node address the loopback one, so that every
# process of a local Ray listens on 127.0.0.1 only; read when Ray is first imported.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def import_ray(local: bool = False):
    """Ray, imported. `local` (a Ray started for this command), when this is Ray's first import:
    Ray keeps to the loopback address and asks for a token, a fresh random one unless one is set
    where Ray looks; its processes inherit both, so anyone else on the machine is refused."""
    if local and "ray" not in sys.modules:
        os.environ.update(LOOPBACK_ENV)
        os.environ["RAY_AUTH_MODE"] = "token"
        if ray_auth_problem():
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'resbench[ray]'") from None
    return ray
