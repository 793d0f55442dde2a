"""A real one-machine Kubernetes for development and tests (`scripts/cluster up|down|status`).

Kubernetes 1.20.2 built from Debian's source package (kubebuild), images built with buildah from a
Debian base (images), certificates (pki), and the processes of the cluster (cluster). Debian and
root only; nothing here is used by the hub itself.
"""
