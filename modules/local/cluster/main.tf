# A local Kubernetes cluster for development and tests, built from Terraform's built-in features only
# (`terraform_data` + `local-exec`), so it needs no provider download.
#
# Local mode (`cluster_bin` set): create starts a local cluster (`kube-cluster`) in the background with
#   --listen <listen> --kubeconfig <state_dir>/kubeconfig --port-file <state_dir>/url
# and records its process id in <state_dir>/pid; destroy stops that process and removes the files.
# Existing mode (`kubeconfig_path` set): nothing is started; the given kubeconfig is passed through.
#
# Either way the outputs are read back from the kubeconfig file with file()/yamldecode() and follow the
# common cluster output contract (docs/provisioning.md).

locals {
  mode      = var.cluster_bin != null ? "local" : "existing"
  state_dir = var.state_dir != null ? trimsuffix(var.state_dir, "/") : "${abspath(path.root)}/.local-clusters/${var.name}"

  # Everything the create and destroy provisioners need. Destroy-time provisioners may only read `self`,
  # so it is stored in the resource; a change to any of it restarts the cluster.
  cluster = {
    name          = var.name
    cluster_bin   = coalesce(var.cluster_bin, "-")
    state_dir     = local.state_dir
    listen        = var.listen
    args          = var.cluster_args
    detach        = var.detach
    start_timeout = var.start_timeout_seconds
  }

  # Extra arguments, each quoted for /bin/sh ('...' with every ' written as '\'').
  cluster_args_sh = join(" ", [for arg in var.cluster_args : "'${replace(arg, "'", "'\\''")}'"])
}

resource "terraform_data" "cluster" {
  count = local.mode == "local" ? 1 : 0

  triggers_replace = local.cluster
  # timestamp() is unknown until apply, so the outputs below stay unknown in the plan that creates the
  # cluster and are only read once the files exist. ignore_changes keeps the value from creation; any
  # change of configuration replaces the resource through triggers_replace.
  input = merge(local.cluster, { created_at = timestamp() })

  lifecycle {
    ignore_changes = [input]
  }

  provisioner "local-exec" {
    command = "/bin/sh '${path.module}/scripts/start-cluster.sh'"
    environment = {
      CLUSTER_NAME  = self.input.name
      CLUSTER_BIN   = self.input.cluster_bin
      STATE_DIR     = self.input.state_dir
      LISTEN        = self.input.listen
      CLUSTER_ARGS  = local.cluster_args_sh
      DETACH        = tostring(self.input.detach)
      START_TIMEOUT = tostring(self.input.start_timeout)
    }
  }

  # Destroy-time provisioners may only read `self` (and path.*), hence everything lives in `input`.
  provisioner "local-exec" {
    when    = destroy
    command = "/bin/sh '${path.module}/scripts/stop-cluster.sh'"
    environment = {
      CLUSTER_NAME = self.input.name
      STATE_DIR    = self.input.state_dir
    }
  }
}

# Existing mode: a marker whose creation and destruction touch nothing outside Terraform's state.
resource "terraform_data" "existing" {
  count = local.mode == "existing" ? 1 : 0

  triggers_replace = {
    name            = var.name
    kubeconfig_path = var.kubeconfig_path
    context         = var.context
  }
  input = { created_at = timestamp() }

  lifecycle {
    ignore_changes = [input]

    precondition {
      condition     = local.mode != "existing" || try(length(yamldecode(file(var.kubeconfig_path)).contexts) > 0, false)
      error_message = "kubeconfig_path ${coalesce(var.kubeconfig_path, "-")} is not a readable kubeconfig with at least one context (YAML with clusters, users and contexts)."
    }

    precondition {
      condition     = local.mode != "existing" || try(local.kubeconfig_context_name != null && length([for c in yamldecode(file(var.kubeconfig_path)).contexts : c if c.name == local.kubeconfig_context_name]) == 1, false)
      error_message = "The kubeconfig ${coalesce(var.kubeconfig_path, "-")} has no context named \"${coalesce(local.kubeconfig_context_name, "<none>")}\"."
    }
  }
}

locals {
  kubeconfig_file         = local.mode == "local" ? "${local.state_dir}/kubeconfig" : var.kubeconfig_path
  kubeconfig_context_name = local.mode == "existing" ? try(coalesce(var.context, lookup(yamldecode(file(var.kubeconfig_path)), "current-context", ""), yamldecode(file(var.kubeconfig_path)).contexts[0].name), null) : null

  # created_at is unknown until the cluster resource has been created, so every value below is unknown in
  # the plan that creates it and is read from the file only after the create provisioner has written it.
  # (The gate must make the path itself unknown: Terraform knows that an unknown timestamp is not null, so a
  # `created_at == null ? ...` test would be decided during plan.)
  created_at     = one(concat(terraform_data.cluster[*].output.created_at, terraform_data.existing[*].output.created_at))
  gate           = substr(local.created_at, 0, 0)
  kubeconfig_raw = fileexists("${local.kubeconfig_file}${local.gate}") ? file("${local.kubeconfig_file}${local.gate}") : null

  cluster_pid = local.mode != "local" ? null : fileexists("${local.state_dir}/pid${local.gate}") ? trimspace(file("${local.state_dir}/pid")) : null
}

# The contract outputs, parsed out of the kubeconfig (relative file references in a passed-through kubeconfig
# are relative to its directory, as for kubectl).
module "contract" {
  source = "../../common/cluster-contract"

  cluster_name = var.name
  kubeconfig   = local.kubeconfig_raw
  context      = local.mode == "existing" ? local.kubeconfig_context_name : null
  base_dir     = dirname(local.kubeconfig_file)
}

# Warns (does not fail) when the state says the cluster runs but its process is gone, e.g. after a reboot:
# `terraform apply -replace='module.<name>.terraform_data.cluster[0]'` starts a new one.
check "cluster_running" {
  assert {
    condition     = local.mode != "local" || try(fileexists("/proc/${trimspace(file("${local.state_dir}/pid"))}/cmdline"), true)
    error_message = "The cluster recorded in ${local.state_dir}/pid is not running; replace terraform_data.cluster[0] to start a new one."
  }
}
