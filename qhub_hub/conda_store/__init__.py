"""conda-store: declared environments, namespace-gated, as kernels and Dask worker environments.

conda-store builds each environment at ``<root>/<namespace>/envs/<name>``; a user may use the
namespaces of their plan (`UserPlan.environment_namespaces`: their own, their groups', the global
one). The pieces, one concern per module:

- `layout`: the on-disk layout; which environments a user may use, read from the filesystem.
- `roles`: pure role bindings (conda-store RBAC) for a plan, the hub's token and user-server tokens.
- `client`: the REST client (sync and async), following conda-store's pagination.
- `sync`: submit the config's declared environments; unchanged ones are left alone.
- `kernels`: a Jupyter kernel spec manager offering the user's environments as kernels.
- `server_config`: the settings of the conda-store server process (its traitlets config file).
- `conda_store_auth`: conda-store's JupyterHub login, run inside the conda-store process.
- `hub_service`: the hub side: the conda-store service entry and the background sync.

Nothing is imported here: `conda_store_auth` runs in conda-store's own environment, which has
neither httpx nor jupyter_client.
"""
