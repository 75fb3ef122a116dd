variable "cluster_name" {
  type        = string
  description = "Name of the cluster; becomes the name of the cluster, user and context in the normalised kubeconfig."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "Invalid cluster name \"${var.cluster_name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "kubeconfig" {
  type        = string
  default     = null
  sensitive   = true
  description = "Kubeconfig YAML to read the cluster's endpoint, CA and credentials from. Null or unknown gives null or unknown outputs (e.g. before the cluster exists)."
}

variable "context" {
  type        = string
  default     = null
  description = "Context of `kubeconfig` to use; null means its current-context, or its first context when it sets none."
}

variable "base_dir" {
  type        = string
  default     = null
  description = "Directory that relative file references in `kubeconfig` (certificate-authority, client-certificate, client-key, tokenFile) are relative to, normally the kubeconfig file's directory; null leaves them as they are."

  validation {
    condition     = var.base_dir == null || try(startswith(var.base_dir, "/"), false)
    error_message = "base_dir must be an absolute path."
  }
}
