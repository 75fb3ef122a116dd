variable "region" {
  type        = string
  description = "Tencent Cloud region of the management node, e.g. ap-guangzhou."

  validation {
    condition     = can(regex("^[a-z]{2,}(-[a-z]+)+$", var.region))
    error_message = "region must look like ap-guangzhou."
  }
}

variable "name" {
  type        = string
  default     = "edgefleet-mgmt"
  description = "Name of the management node; every resource is named after it (a DNS label of at most 30 characters)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of 1-30 characters (lowercase letters, digits and '-', starting with a letter)."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones for the subnets, e.g. [\"ap-guangzhou-3\", \"ap-guangzhou-4\"]; the control plane CVM goes into the first."

  validation {
    condition     = length(var.availability_zones) >= 1 && length(var.availability_zones) <= 8 && alltrue([for z in var.availability_zones : can(regex("^[a-z]{2,}(-[a-z]+)+-[0-9]+$", z))])
    error_message = "availability_zones must list 1 to 8 zones like ap-guangzhou-3."
  }
}

variable "vpc_cidr_block" {
  type        = string
  default     = "10.10.0.0/16"
  description = "IPv4 range of the management VPC (keep it distinct from the user regions' VPCs in case they are ever peered)."

  validation {
    condition     = can(cidrhost(var.vpc_cidr_block, 0)) && try(tonumber(split("/", var.vpc_cidr_block)[1]) >= 12 && tonumber(split("/", var.vpc_cidr_block)[1]) <= 24, false)
    error_message = "vpc_cidr_block must be an IPv4 CIDR from /12 to /24."
  }
}

variable "control_plane_mode" {
  type        = string
  default     = "cvm"
  description = "Where the control plane runs: \"cvm\" (CVM instances with a fixed elastic IP; the control plane is installed by user_data or by hand) or \"tke\" (a small TKE cluster; expose the control plane with a LoadBalancer Service)."

  validation {
    condition     = contains(["cvm", "tke"], var.control_plane_mode)
    error_message = "control_plane_mode must be \"cvm\" or \"tke\"."
  }
}

variable "instance_type" {
  type        = string
  default     = "SA5.LARGE8"
  description = "CVM instance type of the control plane host (cvm mode) or of the TKE nodes (tke mode)."
}

variable "instance_count" {
  type        = number
  default     = 1
  description = "Number of control plane CVMs (cvm mode) or TKE nodes (tke mode). The elastic IP goes to the first CVM; several control plane processes share PostgreSQL."

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 10 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count must be a whole number from 1 to 10."
  }
}

variable "system_disk_size" {
  type        = number
  default     = 100
  description = "System disk of the control plane CVMs in GB (holds PostgreSQL and ClickHouse data when they run on the host)."
}

variable "key_ids" {
  type        = list(string)
  default     = []
  description = "SSH key pair IDs (skey-xxxxxxxx) for the control plane CVMs."
}

variable "user_data" {
  type        = string
  default     = null
  description = "Plain-text cloud-init for the control plane CVMs (e.g. install PostgreSQL, ClickHouse and the control-plane binary). Must not contain secrets: it is readable from the instance metadata."
}

variable "api_port" {
  type        = number
  default     = 443
  description = "Port of the REST API and console (TLS, e.g. a reverse proxy in front of the control plane's api_listen)."

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535 && floor(var.api_port) == var.api_port
    error_message = "api_port must be a port number."
  }
}

variable "agent_port" {
  type        = number
  default     = 8443
  description = "Port of the agent gRPC service (mutual TLS, the control plane's agent_listen)."

  validation {
    condition     = var.agent_port >= 1 && var.agent_port <= 65535 && floor(var.agent_port) == var.agent_port
    error_message = "agent_port must be a port number."
  }
}

variable "api_allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the API and console."

  validation {
    condition     = alltrue([for c in var.api_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "api_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "agent_allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "IPv4 ranges allowed to reach the agent port (the user regions' egress IPs, where known)."

  validation {
    condition     = alltrue([for c in var.agent_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "agent_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "ssh_allowed_cidrs" {
  type        = list(string)
  default     = []
  description = "IPv4 ranges allowed to reach SSH (22) on the control plane CVMs; empty closes SSH."

  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "ssh_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "state_bucket_name" {
  type        = string
  default     = null
  description = "Name (without the APPID suffix) of the COS bucket for Terraform state, plan files and artifacts; null means <name>-state."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource; `edgefleet-role = management` is always added."
}
