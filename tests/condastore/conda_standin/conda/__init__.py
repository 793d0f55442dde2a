"""A test-only stand-in for the `conda` library, which no registry here provides.

conda-store-server imports a few names from `conda` at start-up (its environment-spec validation
and its build actions). This package provides exactly those names, on the server's PYTHONPATH in
tests only; it is never part of qhub_hub. What a spec check needs (`MatchSpec`, the platform) works;
what only a real build would call raises `StandInError`, so a build fails loudly, never silently.
"""

__version__ = "0.0.0+qhub.test.standin"


class StandInError(RuntimeError):
    """A build step reached code the stand-in does not provide (no conda channels in tests)."""


def not_provided(name: str):
    def call(*args, **kwargs):
        raise StandInError(f"conda stand-in: {name} is not available in tests (no conda channels)")

    call.__name__ = name.rsplit(".", 1)[-1]
    return call
