variable "region" {
  type        = string
  description = "AWS region of the cluster, e.g. us-east-1."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "cluster_name" {
  type        = string
  description = "Name of the cluster: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 40 characters). Network and storage are named after it."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "Invalid cluster name \"${var.cluster_name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "At least two availability zones of the region, e.g. [\"us-east-1a\", \"us-east-1b\"]."

  validation {
    condition     = length(var.availability_zones) >= 2 && alltrue([for z in var.availability_zones : startswith(z, var.region)])
    error_message = "availability_zones must list at least two zones of the region (e.g. us-east-1a, us-east-1b for us-east-1)."
  }
}

variable "vpc_cidr_block" {
  type        = string
  default     = "10.0.0.0/16"
  description = "IPv4 range of the region's VPC (/16 to /24)."
}

variable "single_nat_gateway" {
  type        = bool
  default     = true
  description = "One NAT gateway for all zones (cheaper) instead of one per zone."
}

variable "kubernetes_version" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor version of the EKS cluster."
}

variable "capacity_type" {
  type        = string
  default     = "ON_DEMAND"
  description = "ON_DEMAND or SPOT nodes."
}

variable "instance_types" {
  type        = list(string)
  default     = ["t3.large"]
  description = "EC2 instance types of the nodes (give several for SPOT)."
}

variable "node_count" {
  type        = number
  default     = 2
  description = "Desired number of nodes."
}

variable "node_min_count" {
  type        = number
  default     = 1
  description = "Minimum size of the node group."
}

variable "node_max_count" {
  type        = number
  default     = 5
  description = "Maximum size of the node group."
}

variable "public_access_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the public API endpoint (the control plane's egress IPs, where known)."
}

variable "create_bucket" {
  type        = bool
  default     = true
  description = "Create an S3 bucket for the region's artifacts."
}

variable "bucket_name" {
  type        = string
  default     = null
  description = "Name of that bucket; null means <cluster_name>-<account id> (at most 53 characters)."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource (provider default_tags); `edgefleet-cluster = <cluster_name>` is always added."
}
