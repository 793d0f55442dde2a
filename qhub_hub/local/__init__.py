"""The embedded mode: the whole platform on one machine with real Unix users (`qhub-hub local`).

accounts.py (Unix users and groups), folders.py + acl.py (homes, /shared, group folders),
limits.py (profile resources as cgroups), process.py (start a process as exactly the plan's ids),
spawner.py (`QHubLocalSpawner`), ssh.py + ssh_check.py (the OpenSSH server and its token check),
hub_config.py, gateway.py, procs.py, settings.py and platform.py (`local up|down|status|restart`),
cli.py (the commands).
"""
