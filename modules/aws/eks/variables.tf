variable "cluster_name" {
  type        = string
  description = "Name of the cluster: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 40 characters)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "Invalid cluster name \"${var.cluster_name}\": it must be a DNS label of 1-40 characters (lowercase letters, digits and '-'), start with a letter and end with a letter or digit."
  }
}

variable "kubernetes_version" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor version of the control plane, e.g. 1.31."

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.31."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets for the control plane's network interfaces, in at least two availability zones (normally the private subnets of modules/aws/vpc)."

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "subnet_ids must contain at least two subnet IDs (subnet-...) in different availability zones."
  }
}

variable "node_subnet_ids" {
  type        = list(string)
  default     = null
  description = "Subnets for the managed node group; null means subnet_ids."

  validation {
    condition     = var.node_subnet_ids == null || try(length(var.node_subnet_ids) >= 1 && alltrue([for id in var.node_subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))]), false)
    error_message = "node_subnet_ids must be null or contain at least one subnet ID (subnet-...)."
  }
}

variable "endpoint_public_access" {
  type        = bool
  default     = true
  description = "Serve the Kubernetes API on a public endpoint (the control plane reaches it from outside the VPC)."
}

variable "public_access_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the public API endpoint. Narrow it to the control plane's egress IPs where they are known."

  validation {
    condition     = length(var.public_access_cidrs) > 0 && alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "public_access_cidrs must contain at least one IPv4 CIDR."
  }
}

variable "capacity_type" {
  type        = string
  default     = "ON_DEMAND"
  description = "Capacity of the managed node group: ON_DEMAND or SPOT (cheaper, can be reclaimed with two minutes' notice; give several instance_types)."

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.capacity_type)
    error_message = "capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "instance_types" {
  type        = list(string)
  default     = ["t3.large"]
  description = "EC2 instance types of the nodes; with SPOT, several similar types make capacity easier to get."

  validation {
    condition     = length(var.instance_types) > 0 && alltrue([for t in var.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "instance_types must contain at least one EC2 instance type like t3.large."
  }
}

variable "ami_type" {
  type        = string
  default     = "AL2023_x86_64_STANDARD"
  description = "AMI family of the nodes, e.g. AL2023_x86_64_STANDARD, AL2023_ARM_64_STANDARD or BOTTLEROCKET_x86_64."

  validation {
    condition     = can(regex("^(AL2023|AL2|BOTTLEROCKET|WINDOWS)_[A-Za-z0-9_]+$", var.ami_type))
    error_message = "ami_type must be an EKS AMI type such as AL2023_x86_64_STANDARD."
  }
}

variable "disk_size" {
  type        = number
  default     = 50
  description = "Root volume size of the nodes in GiB (20-1000)."

  validation {
    condition     = var.disk_size >= 20 && var.disk_size <= 1000 && floor(var.disk_size) == var.disk_size
    error_message = "disk_size must be a whole number of GiB from 20 to 1000."
  }
}

variable "node_count" {
  type        = number
  default     = 2
  description = "Desired number of nodes (between node_min_count and node_max_count)."

  validation {
    condition     = var.node_count >= 0 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number >= 0."
  }
}

variable "node_min_count" {
  type        = number
  default     = 1
  description = "Minimum size of the node group."

  validation {
    condition     = var.node_min_count >= 0 && floor(var.node_min_count) == var.node_min_count && var.node_min_count <= var.node_count
    error_message = "node_min_count must be a whole number >= 0 and <= node_count."
  }
}

variable "node_max_count" {
  type        = number
  default     = 5
  description = "Maximum size of the node group."

  validation {
    condition     = floor(var.node_max_count) == var.node_max_count && var.node_max_count >= var.node_count && var.node_max_count >= 1 && var.node_max_count <= 450
    error_message = "node_max_count must be a whole number from max(1, node_count) to 450."
  }
}

variable "node_labels" {
  type        = map(string)
  default     = {}
  description = "Kubernetes labels for the nodes."
}

variable "enabled_cluster_log_types" {
  type        = list(string)
  default     = []
  description = "Control plane logs to send to CloudWatch: any of api, audit, authenticator, controllerManager, scheduler."

  validation {
    condition     = alltrue([for t in var.enabled_cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "enabled_cluster_log_types may only contain api, audit, authenticator, controllerManager and scheduler."
  }
}

variable "aws_cli_command" {
  type        = string
  default     = "aws"
  description = "Command the kubeconfig's exec credential plugin runs (`<command> eks get-token ...`); it needs AWS credentials in its environment."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource of the module."
}
