"""What a server profile or a Dask worker asks for, as the ledger records it and the limits count it."""

from __future__ import annotations

from dataclasses import dataclass

from ..config_model import DaskWorkerProfile, JupyterLabProfile
from ..units import parse_bytes
from .limits import Unit


@dataclass(frozen=True)
class Resources:
    profile: str  # a jupyterlab profile's slug, or a dask_worker profile's name ("" when none)
    cores: float = 0.0  # requested: cpu_guarantee (else cpu_limit), or worker_cores
    memory: int = 0  # bytes requested: mem_guarantee (else mem_limit), or worker_memory
    gpus: int = 0
    cost_per_hour: float = 0.0

    def server_unit(self) -> Unit:
        return Unit(servers=1, gpus=self.gpus, cores=self.cores, cost_per_hour=self.cost_per_hour)

    def worker_unit(self) -> Unit:
        return Unit(gpus=self.gpus, cores=self.cores, dask_cores=self.cores,
                    cost_per_hour=self.cost_per_hour)


def server_resources(profile: JupyterLabProfile | None) -> Resources:
    """A server of `profile` (None: the config defines no profiles, nothing is requested)."""
    if profile is None:
        return Resources(profile="")
    override = profile.kubespawner_override
    memory = override.mem_guarantee or override.mem_limit
    return Resources(
        profile=profile.profile_slug,
        cores=float(override.cpu_guarantee or override.cpu_limit or 0.0),
        memory=parse_bytes(memory) if memory else 0,
        gpus=override.gpus,
        cost_per_hour=float(profile.cost_per_hour or 0.0),
    )


def worker_resources(name: str, profile: DaskWorkerProfile) -> Resources:
    """One Dask worker of the worker profile `name`."""
    return Resources(profile=name, cores=float(profile.worker_cores),
                     memory=parse_bytes(profile.worker_memory),
                     cost_per_hour=float(profile.cost_per_hour or 0.0))
