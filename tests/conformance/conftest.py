from tests.hub.conftest import dummy_kubeconfig  # noqa: F401 - the Kubernetes spawner's kubeconfig
