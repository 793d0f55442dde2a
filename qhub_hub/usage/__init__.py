"""Usage, cost and limits per user and per group, for notebooks and Dask alike.

- `limits`: the pure rules (config grants + current usage -> allowed, or a refusal with figures);
- `ledger`: every server session and Dask worker life in a database (SQLite by default);
- `resources`: what a profile or a Dask worker asks for (cores, memory, GPUs, cost per hour);
- `hub`: the hub side (recording spawns and stops, checking a spawn, reconciling after a restart);
- `gateway`: the Dask Gateway side (recording workers, capping scale-ups and adaptive scaling);
- `dask`: the worker bookkeeping the gateway and the hub share; `measure`: a server's cgroup figures;
- `metrics`: Prometheus metrics read from the ledger, served on the hub's /hub/metrics;
- `report`: `qhub-hub usage` (text, CSV, markdown);
- `pages`, `chart`: the admins' usage page (a month at a time) and its SVG charts;
- `api`, `scopes`: the hub's endpoint where a gateway without the ledger records Dask workers, and
  its scope; `stop_reason`: a stop the idle culler asked for ends "culled".
"""
