"""Dask Gateway for qhub-hub: environments, renderings for the Kubernetes and local backends,
our backends, the hub-side settings and the embedded mode's gateway config.

The user-facing options and their handler live in `qhub_hub.gateway_options`.
"""
