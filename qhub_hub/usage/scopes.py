"""The custom scope of the hub's usage endpoint (`usage.api`): recording Dask workers and asking for
their limits. Held by the Dask Gateway's hub service alone (the `qhub-usage-writers` role of
`hub_settings`): neither users nor the services that only read plans (SSH, conda-store, SFTP)
may write usage. Here, apart from the handler, so that hub settings can name it cheaply."""

USAGE_WRITE_SCOPE = "custom:qhub:usage:write"
USAGE_WRITE_SCOPE_DESCRIPTION = "Record Dask workers in the usage ledger and ask for their owners' limits."
