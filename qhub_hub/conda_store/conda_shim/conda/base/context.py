import platform

_ARCH = {"x86_64": "64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le"}


class _Context:
    subdir = f"linux-{_ARCH.get(platform.machine(), platform.machine())}"
    pkgs_dirs: tuple[str, ...] = ()


context = _Context()
