variable "region" {
  type        = string
  description = "Tencent Cloud region of the cluster, e.g. ap-guangzhou."

  validation {
    condition     = can(regex("^[a-z]{2,}(-[a-z]+)+$", var.region))
    error_message = "region must look like ap-guangzhou."
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
  description = "Availability zones of the region to spread subnets and nodes over, e.g. [\"ap-guangzhou-3\", \"ap-guangzhou-4\"]."

  validation {
    condition     = length(var.availability_zones) >= 1 && length(var.availability_zones) <= 8 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 1 to 8 distinct zones."
  }

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^[a-z]{2,}(-[a-z]+)+-[0-9]+$", z))])
    error_message = "every availability zone must look like ap-guangzhou-3."
  }
}

variable "vpc_cidr_block" {
  type        = string
  default     = "10.0.0.0/16"
  description = "IPv4 range of the region's VPC; one /20 subnet (for a /16) per availability zone is carved out of it."

  validation {
    condition     = can(cidrhost(var.vpc_cidr_block, 0)) && try(tonumber(split("/", var.vpc_cidr_block)[1]) >= 12 && tonumber(split("/", var.vpc_cidr_block)[1]) <= 24, false)
    error_message = "vpc_cidr_block must be an IPv4 CIDR from /12 to /24."
  }
}

variable "cluster_cidr" {
  type        = string
  default     = "172.20.0.0/16"
  description = "Pod and service network of the cluster; must not overlap vpc_cidr_block."
}

variable "kubernetes_version" {
  type        = string
  default     = "1.30.0"
  description = "Kubernetes version of the TKE cluster, e.g. 1.30.0."
}

variable "node_pool_type" {
  type        = string
  default     = "cvm"
  description = "\"cvm\" (auto-scaling CVM node pool, optionally spot) or \"serverless\" (TKE serverless super nodes)."
}

variable "spot" {
  type        = bool
  default     = false
  description = "Run the CVM nodes on spot (preemptible) instances for cost."
}

variable "node_instance_type" {
  type        = string
  default     = "SA5.MEDIUM4"
  description = "CVM instance type of the nodes."
}

variable "node_count" {
  type        = number
  default     = 2
  description = "Desired number of CVM nodes."
}

variable "node_min_count" {
  type        = number
  default     = 1
  description = "Lower bound of node auto scaling."
}

variable "node_max_count" {
  type        = number
  default     = 5
  description = "Upper bound of node auto scaling."
}

variable "endpoint_allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the cluster's public API endpoint (the control plane's egress IPs, where known)."
}

variable "create_bucket" {
  type        = bool
  default     = true
  description = "Create a COS bucket for the region's artifacts (named <cluster_name>-<appid>)."
}

variable "create_file_system" {
  type        = bool
  default     = false
  description = "Create a CFS (NFS) file system in the first zone for shared model files, mountable from the VPC."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource; `edgefleet-cluster = <cluster_name>` is always added."
}
