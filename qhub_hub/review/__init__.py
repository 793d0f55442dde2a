"""Access review: what a config change does to people, and what the machine really has.

- `access.py`       what one plan gives, reduced to comparable facts (`Access`)
- `subjects.py`     whose access is compared: config users, identity-provider group mappings
- `changes.py`      the diff model (`Change`, `SubjectDiff`, `ReviewWarning`, `ConfigDiff`)
- `reach.py`        who a config change can reach: the only people `diff` plans in both configs
- `diff.py`         `diff_configs(old, new)`: plans of both configs, compared
- `warnings.py`     changes that damage data or access, each with what to do
- `render_text.py`, `render_markdown.py`, `render_json.py`   the three output formats
- `git.py`          a config file as it was at a git revision
- `reverse.py`      `explain --profile/--folder/--group`: who gets a thing
- `findings.py`     the audit's findings model and its rendering
- `expected_state.py`  the folders, owners, modes and ACLs the local mode gives a plan
- `hub_db.py`       hub users (groups, dynamic uids, server pids) from the embedded hub's database
- `machine_audit.py`  `qhub-hub audit`: accounts, folders, ACLs, running processes vs the plans
- `pod_audit.py`, `kube.py`  `qhub-hub audit --kubernetes`: user pods vs the plans; a thin client
- `cli.py`          the `diff` and `audit` subcommands, and the reverse `explain` options

Everything is computed from `qhub_hub.policy.plan_for`: no policy rule is restated here.
"""
