"""The embedded mode: the whole platform on one machine with real Unix users (`qhub-hub local`).

- accounts.py: Unix users and groups with the config's ids (conflicts refused);
- folders.py, acl.py: homes, the shared folder, group folders with setgid and default ACLs;
- limits.py: profile memory/CPU as a cgroup per server (RLIMIT_AS/affinity without cgroups);
- process.py: start a process as exactly the plan's ids, or not at all;
- session_env.py: the server's environment for terminals and SSH sessions;
- spawner.py: `QHubLocalSpawner` (PlanSpawnerMixin + LocalProcessSpawner);
- ssh.py, ssh_check.py: the platform's own OpenSSH server and its hub-token PAM check;
- settings.py, hub_config.py, gateway.py, conda_store.py, procs.py, platform.py: `local
  up|down|status|restart` (conda_store.py: the embedded conda-store server and worker);
- cli.py: the commands.
"""
