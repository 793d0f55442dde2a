"""Container images of the old platforms: the stock ones are replaced by qhub-hub's own."""

from __future__ import annotations

import re

# QHub's and Nebari's published images. They lack what qhub-hub's servers rely on (conda-store
# environments as kernels through qhub_hub, nss_wrapper for per-user uids); the chart's images
# take their place. An image of the team's own is kept, with a note to rebuild it FROM ours.
_STOCK = re.compile(r"^(docker\.io/)?(quansight/(qhub|nebari)-[a-z-]+|quansight/conda-store-server"
                    r"|quay\.io/(nebari|quansight)/[a-z0-9-]+)(:.*)?$")


def is_stock_image(image: str) -> bool:
    return bool(_STOCK.match(image.strip()))


def split_image(image: str) -> tuple[str, str]:
    """name, tag ('latest' when unset); a registry port is not a tag."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return name, tag
