# conda-store environments of the user's namespaces as kernels (their own interpreters); the
# server's environment stays read-only to users. See qhub_hub.conda_store.kernels.
c = get_config()  # noqa: F821 - provided by traitlets
c.ServerApp.kernel_spec_manager_class = "qhub_hub.conda_store.kernels.CondaStoreKernelSpecManager"
