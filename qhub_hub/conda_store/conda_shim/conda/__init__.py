"""A stand-in for the `conda` library, for a conda-store that has no real conda.

conda-store-server imports a few names from `conda` at start-up (its environment-spec validation
and its build actions), and no registry but conda's own channels ships conda. The embedded platform
(`qhub_hub.local.conda_store`) puts the folder holding this package on the conda-store processes'
PYTHONPATH only when conda-store's environment cannot import a real `conda`; the conda-store tests
do the same. It provides exactly those names: what a spec check needs (`MatchSpec`, the platform)
works; what only a real build would call raises `StandInError`, so a build fails loudly (in
conda-store's build log and status), never silently. With a real conda installed it is not used.
"""

__version__ = "0.0.0+qhub.standin"


class StandInError(RuntimeError):
    """A build step reached code the stand-in does not provide (no real conda on this machine)."""


def not_provided(name: str):
    def call(*args, **kwargs):
        raise StandInError(f"conda stand-in: {name} is not available: conda is not installed for "
                           "conda-store on this machine, so environments cannot be built")

    call.__name__ = name.rsplit(".", 1)[-1]
    return call
