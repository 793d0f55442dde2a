"""How long a user's kernel list takes as their environments grow (a command, not a test).

    python benchmarks/kernels.py

Every /api/kernelspecs call re-reads the disk (so a finished build appears without a restart).
Prints the time of `CondaStoreKernelSpecManager.get_all_specs()` for N environments, next to the
anchor measured in the same run: a stock `KernelSpecManager.get_all_specs()` listing the same
number of kernels installed as ordinary kernel specs.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from qhub_hub.conda_store.kernels import CondaStoreKernelSpecManager

KERNEL = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "Python 3 (ipykernel)", "language": "python"}


def make_layout(root: Path, count: int, namespaces: int = 5) -> list[str]:
    names = [f"ns{i}" for i in range(namespaces)]
    for i in range(count):
        prefix = root / names[i % namespaces] / "envs" / f"env-{i:04d}"
        (prefix / "bin").mkdir(parents=True)
        (prefix / "bin" / "python").touch()
        kernel_dir = prefix / "share/jupyter/kernels/python3"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps(KERNEL))
    return names


def make_kernel_dirs(directory: Path, count: int) -> None:
    for i in range(count):
        kernel_dir = directory / f"k-{i:04d}"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps(KERNEL))


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(f"{'environments':>12} {'conda-store kernels ms':>24} {'anchor: stock specs ms':>24} "
          f"{'ratio':>6}")
    for count in (10, 100, 500):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            namespaces = make_layout(root, count)
            ours = CondaStoreKernelSpecManager(environments_root=str(root), namespaces=namespaces,
                                               include_server_kernels=False)
            assert len(ours.get_all_specs()) == count
            stock_dir = Path(tmp) / "kernels"
            make_kernel_dirs(stock_dir, count)
            stock = KernelSpecManager(kernel_dirs=[str(stock_dir)], ensure_native_kernel=False)
            assert len(stock.get_all_specs()) == count
            t_ours, t_stock = best_of(ours.get_all_specs), best_of(stock.get_all_specs)
            print(f"{count:>12} {t_ours * 1000:>24.1f} {t_stock * 1000:>24.1f} "
                  f"{t_ours / t_stock:>6.2f}")


if __name__ == "__main__":
    main()
