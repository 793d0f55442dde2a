"""qhub-hub: a JupyterHub distribution driven by one version-controlled config."""

__version__ = "0.1.0"
