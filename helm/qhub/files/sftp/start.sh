#!/bin/sh
# SFTP pod entry point. The accounts come from the hub's plans (accounts.py): the image's own
# passwd, group and shadow are set aside once, then a background loop writes them plus one account
# per hub user: users new to the hub within $QHUB_SFTP_SYNC_SECONDS (default 10), everyone's plan
# again every $QHUB_SFTP_FULL_SYNC_SECONDS (default 300); each login refreshes its own user's
# entries first (jupyterhub-token-verify.py). /etc/nsswitch.conf is ours (files only): a login
# name that is not an account is refused, never mapped to a shared uid.
set -eu
ACCOUNTS=/etc/qhub/sftp/accounts.py
python3 "$ACCOUNTS" keep-image-entries
python3 "$ACCOUNTS" sync || echo "qhub-sftp: no accounts yet, the hub did not answer; retrying in the background" >&2
(
  while true; do
    python3 "$ACCOUNTS" sync --every "${QHUB_SFTP_SYNC_SECONDS:-10}" \
      --full-every "${QHUB_SFTP_FULL_SYNC_SECONDS:-300}" || true
    sleep 10
  done
) &
exec /usr/sbin/sshd -D -e
