# Region stack for the `local` cloud: a development/test cluster, either the Kubernetes API emulator started
# by Terraform or an existing cluster given by its kubeconfig. There is no network or storage to create
# locally; the stack only wraps modules/local/cluster and re-exports its contract.

module "cluster" {
  source = "../../../modules/local/cluster"

  name                  = var.cluster_name
  emulator_bin          = var.emulator_bin
  kubeconfig_path       = var.kubeconfig_path
  context               = var.context
  state_dir             = var.state_dir
  emulator_args         = var.emulator_args
  start_timeout_seconds = var.start_timeout_seconds
  detach                = var.detach
}
