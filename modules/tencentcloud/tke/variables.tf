variable "cluster_name" {
  type        = string
  description = "Name of the cluster: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 40 characters)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "Invalid cluster name \"${var.cluster_name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "cluster_version" {
  type        = string
  default     = "1.30.0"
  description = "Kubernetes version of the managed control plane, e.g. 1.30.0 (see the data source tencentcloud_kubernetes_available_cluster_versions)."

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.cluster_version))
    error_message = "cluster_version must look like 1.30.0."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster (vpc-xxxxxxxx)."

  validation {
    condition     = can(regex("^vpc-[0-9a-z]{8}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-xxxxxxxx."
  }
}

variable "vpc_cidr_block" {
  type        = string
  description = "IPv4 range of the VPC; nodes accept all traffic from it."

  validation {
    condition     = can(cidrhost(var.vpc_cidr_block, 0))
    error_message = "vpc_cidr_block must be an IPv4 CIDR."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets (subnet-xxxxxxxx) for the nodes, ideally one per availability zone; the first one also hosts the intranet API endpoint."

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-z]{8}$", id))])
    error_message = "subnet_ids must contain at least one subnet ID like subnet-xxxxxxxx."
  }
}

variable "cluster_cidr" {
  type        = string
  default     = "172.20.0.0/16"
  description = "Pod and service network of the cluster (global-router mode); must not overlap the VPC or other clusters in it and must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16."

  validation {
    condition     = can(cidrhost(var.cluster_cidr, 0)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.cluster_cidr))
    error_message = "cluster_cidr must be an IPv4 CIDR inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16."
  }
}

variable "max_pods_per_node" {
  type        = number
  default     = 64
  description = "Maximum number of pods per node (a power of two from 16 to 256); the node's pod range is carved out of cluster_cidr."

  validation {
    condition     = contains([16, 32, 64, 128, 256], var.max_pods_per_node)
    error_message = "max_pods_per_node must be 16, 32, 64, 128 or 256."
  }
}

variable "max_services" {
  type        = number
  default     = 256
  description = "Maximum number of Services in the cluster (a power of two from 32 to 32768), carved out of cluster_cidr."

  validation {
    condition     = contains([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], var.max_services)
    error_message = "max_services must be a power of two from 32 to 32768."
  }
}

variable "node_pool_type" {
  type        = string
  default     = "cvm"
  description = "\"cvm\": an auto-scaling node pool of CVM instances (optionally spot); \"serverless\": TKE serverless super nodes (pods run on elastic container instances, no CVMs to manage)."

  validation {
    condition     = contains(["cvm", "serverless"], var.node_pool_type)
    error_message = "node_pool_type must be \"cvm\" or \"serverless\"."
  }
}

variable "node_instance_type" {
  type        = string
  default     = "SA5.MEDIUM4"
  description = "CVM instance type of the nodes (cvm node pool), e.g. SA5.MEDIUM4 (2 vCPU, 4 GiB)."

  validation {
    condition     = can(regex("^[A-Z0-9]+[a-z]?\\.[A-Z0-9]+$", var.node_instance_type))
    error_message = "node_instance_type must look like SA5.MEDIUM4."
  }
}

variable "node_count" {
  type        = number
  default     = 2
  description = "Desired number of nodes of the cvm node pool (between node_min_count and node_max_count)."

  validation {
    condition     = var.node_count >= 0 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number >= 0."
  }
}

variable "node_min_count" {
  type        = number
  default     = 1
  description = "Lower bound of the cvm node pool's auto scaling."

  validation {
    condition     = var.node_min_count >= 0 && floor(var.node_min_count) == var.node_min_count && var.node_min_count <= var.node_count
    error_message = "node_min_count must be a whole number >= 0 and <= node_count."
  }
}

variable "node_max_count" {
  type        = number
  default     = 5
  description = "Upper bound of the cvm node pool's auto scaling."

  validation {
    condition     = floor(var.node_max_count) == var.node_max_count && var.node_max_count >= var.node_count && var.node_max_count >= 1 && var.node_max_count <= 200
    error_message = "node_max_count must be a whole number from max(1, node_count) to 200."
  }
}

variable "spot" {
  type        = bool
  default     = false
  description = "Run the cvm node pool on spot (preemptible, SPOTPAID) instances for cost; reclaimed nodes are replaced by the pool and their pods rescheduled."
}

variable "spot_max_price" {
  type        = string
  default     = "1000"
  description = "Highest hourly price (decimal string, CNY) to pay for a spot node; the default effectively means the current spot price, whatever it is."

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.spot_max_price))
    error_message = "spot_max_price must be a decimal string such as \"0.50\"."
  }
}

variable "node_os" {
  type        = string
  default     = null
  description = "Node image name (public image) or ID (custom image); null keeps TKE's default."
}

variable "node_system_disk_type" {
  type        = string
  default     = "CLOUD_PREMIUM"
  description = "System disk type of the nodes: CLOUD_PREMIUM, CLOUD_SSD, CLOUD_HSSD, CLOUD_BSSD or CLOUD_TSSD."

  validation {
    condition     = contains(["CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_HSSD", "CLOUD_BSSD", "CLOUD_TSSD"], var.node_system_disk_type)
    error_message = "node_system_disk_type must be CLOUD_PREMIUM, CLOUD_SSD, CLOUD_HSSD, CLOUD_BSSD or CLOUD_TSSD."
  }
}

variable "node_system_disk_size" {
  type        = number
  default     = 50
  description = "System disk size of the nodes in GB (50-1024)."

  validation {
    condition     = var.node_system_disk_size >= 50 && var.node_system_disk_size <= 1024 && floor(var.node_system_disk_size) == var.node_system_disk_size
    error_message = "node_system_disk_size must be a whole number of GB from 50 to 1024."
  }
}

variable "node_key_ids" {
  type        = list(string)
  default     = []
  description = "SSH key pair IDs (skey-xxxxxxxx) installed on the cvm nodes; empty means no key (log in through the console only)."

  validation {
    condition     = alltrue([for id in var.node_key_ids : can(regex("^skey-[0-9a-z]{8}$", id))])
    error_message = "node_key_ids must be key pair IDs like skey-xxxxxxxx."
  }
}

variable "node_labels" {
  type        = map(string)
  default     = {}
  description = "Kubernetes labels for the nodes of the pool."
}

variable "endpoint_allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the public API endpoint on port 443. Narrow it to the control plane's egress IPs where they are known."

  validation {
    condition     = length(var.endpoint_allowed_cidrs) > 0 && alltrue([for c in var.endpoint_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "endpoint_allowed_cidrs must contain at least one IPv4 CIDR."
  }
}

variable "intranet_endpoint" {
  type        = bool
  default     = false
  description = "Also open an intranet API endpoint in the first subnet (for clients inside the VPC)."
}

variable "deletion_protection" {
  type        = bool
  default     = false
  description = "Refuse to delete the cluster until this is switched off again."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource of the module."
}
