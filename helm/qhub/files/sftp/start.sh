#!/bin/sh
# SFTP pod entry point: add the qhub accounts (written by accounts.py in the init container) to
# the image's own, then run upstream's sshd. /etc/nsswitch.conf is ours (files only): a login
# name that is not an account is refused, never mapped to a shared uid.
set -eu
cat /etc/qhub/sftp-accounts/passwd >> /etc/passwd
cat /etc/qhub/sftp-accounts/group >> /etc/group
exec /usr/sbin/sshd -D -e
