variable "name" {
  type        = string
  description = "Cluster name: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 40 characters). Used for the kubeconfig context and the default state directory."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "Invalid cluster name \"${var.name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "cluster_bin" {
  type        = string
  default     = null
  description = "Absolute path of the `kube-cluster` binary (`cargo build -p kube-cluster` builds target/debug/kube-cluster), which runs a real Kubernetes control plane with simulated nodes. When set, the module starts the cluster in the background and stops it on destroy. Exactly one of `cluster_bin` and `kubeconfig_path` must be set."

  validation {
    condition     = (var.cluster_bin == null) != (var.kubeconfig_path == null)
    error_message = "Set exactly one of cluster_bin (start a local cluster) and kubeconfig_path (use an existing cluster)."
  }

  # Only the form is checked here: variables are also validated when destroying, and a binary that has
  # gone since must not prevent stopping the cluster. The start script reports a missing binary.
  validation {
    condition     = var.cluster_bin == null || try(startswith(var.cluster_bin, "/"), false)
    error_message = "cluster_bin must be an absolute path (e.g. /path/to/repo/target/debug/kube-cluster); got \"${coalesce(var.cluster_bin, "<null>")}\"."
  }
}

variable "kubeconfig_path" {
  type        = string
  default     = null
  description = "Absolute path of the kubeconfig of an existing cluster to pass through instead of starting the cluster. Nothing is started or stopped in that mode; destroy leaves the cluster alone."

  # The file itself is checked when the cluster is created (a precondition), not here: variables are also
  # validated when destroying, and a kubeconfig that has gone since must not prevent the destroy.
  validation {
    condition     = var.kubeconfig_path == null || try(startswith(var.kubeconfig_path, "/"), false)
    error_message = "kubeconfig_path must be an absolute path; got \"${coalesce(var.kubeconfig_path, "<null>")}\"."
  }
}

variable "context" {
  type        = string
  default     = null
  description = "Context of the kubeconfig given in `kubeconfig_path` to use; null means its current-context (or its first context when it sets none)."

  validation {
    condition     = var.context == null || var.kubeconfig_path != null
    error_message = "context only applies to a kubeconfig given in kubeconfig_path."
  }
}

variable "state_dir" {
  type        = string
  default     = null
  description = "Absolute directory for the cluster's kubeconfig (`kubeconfig`), base URL (`url`), process id (`pid`) and log (`cluster.log`). Null means `<root module directory>/.local-clusters/<name>`. Must not be shared by two clusters."

  validation {
    condition     = var.state_dir == null || try(startswith(var.state_dir, "/"), false)
    error_message = "state_dir must be an absolute path."
  }
}

variable "listen" {
  type        = string
  default     = "127.0.0.1:0"
  description = "Address the cluster listens on, as IP:PORT; port 0 picks a free port (the chosen URL is read back from the cluster's port file)."

  validation {
    condition     = can(regex("^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:]+\\]):\\d{1,5}$", var.listen))
    error_message = "listen must be IP:PORT, e.g. 127.0.0.1:0 or [::1]:6443."
  }
}

variable "cluster_args" {
  type        = list(string)
  default     = []
  description = "Extra command-line arguments for the cluster, e.g. [\"--nodes\", \"3\", \"--ready-delay-ms\", \"100\"]. The module sets --listen, --kubeconfig, --port-file and --state-dir itself."

  validation {
    condition = alltrue([
      for arg in var.cluster_args : !can(regex("^--(listen|kubeconfig|port-file|state-dir)(=|$)", arg))
    ])
    error_message = "cluster_args must not contain --listen, --kubeconfig or --port-file: the module sets them."
  }
}

variable "start_timeout_seconds" {
  type        = number
  default     = 120
  description = "How long to wait for the cluster to write its URL before the apply fails (the cluster is then stopped again)."

  validation {
    condition     = var.start_timeout_seconds >= 1 && var.start_timeout_seconds <= 600 && floor(var.start_timeout_seconds) == var.start_timeout_seconds
    error_message = "start_timeout_seconds must be a whole number between 1 and 600."
  }
}

variable "detach" {
  type        = bool
  default     = true
  description = "Start the cluster in a new session (setsid) so that it survives Terraform and signals sent to Terraform's process group; set false to keep it in Terraform's process group, so that a supervisor that kills that group also kills the cluster."
}
