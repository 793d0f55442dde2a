"""Usage, cost and limits per user and per group, for notebooks and Dask alike.

- `limits`: the pure rules (config grants + current usage -> allowed, or a refusal with figures);
- `ledger`: every server session and Dask worker life in a database (SQLite by default);
- `resources`: what a profile or a Dask worker asks for (cores, memory, GPUs, cost per hour);
- `hub`: the hub side (recording spawns and stops, checking a spawn, reconciling after a restart);
- `gateway`: the Dask Gateway side (recording workers, capping scale-ups and adaptive scaling);
- `metrics`: Prometheus metrics read from the ledger, served on the hub's /hub/metrics;
- `report`: `qhub-hub usage` (text, CSV, markdown).
"""
