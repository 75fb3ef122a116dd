# Region stack for the `local` cloud: a development/test cluster, either a local cluster (`kube-cluster`) started
# by Terraform or an existing cluster given by its kubeconfig. There is no network or storage to create
# locally; the stack only wraps modules/local/cluster and re-exports its contract.

module "cluster" {
  source = "../../../modules/local/cluster"

  name                  = var.cluster_name
  cluster_bin           = var.cluster_bin
  kubeconfig_path       = var.kubeconfig_path
  context               = var.context
  state_dir             = var.state_dir
  cluster_args          = concat(["--nodes", tostring(var.node_count)], var.cluster_args)
  start_timeout_seconds = var.start_timeout_seconds
  detach                = var.detach
}
