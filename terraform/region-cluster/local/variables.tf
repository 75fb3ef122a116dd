variable "cluster_name" {
  type        = string
  description = "Name of the cluster: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 40 characters)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "Invalid cluster name \"${var.cluster_name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "cluster_bin" {
  type        = string
  default     = null
  description = "Absolute path of the kube-cluster binary to start as the cluster; exactly one of cluster_bin and kubeconfig_path must be set."
}

variable "kubeconfig_path" {
  type        = string
  default     = null
  description = "Absolute path of the kubeconfig of an existing cluster to use instead of starting the cluster."
}

variable "context" {
  type        = string
  default     = null
  description = "Context of kubeconfig_path to use; null means its current-context."
}

variable "state_dir" {
  type        = string
  default     = null
  description = "Absolute directory for the cluster's kubeconfig, url, pid and log; null means <this stack's directory>/.local-clusters/<cluster_name>. Give each cluster its own."
}

variable "node_count" {
  type        = number
  default     = 1
  description = "Number of (simulated) nodes of a local cluster; ignored for an existing cluster."

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 10 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 10."
  }
}

variable "cluster_args" {
  type        = list(string)
  default     = []
  description = "Extra kube-cluster arguments, e.g. [\"--ready-delay-ms\", \"300\"] (the node count comes from node_count)."
}

variable "start_timeout_seconds" {
  type        = number
  default     = 120
  description = "How long to wait for the cluster to come up before the apply fails."
}

variable "detach" {
  type        = bool
  default     = true
  description = "Start the cluster in its own session so that it outlives Terraform's process group (false keeps it in the group)."
}
