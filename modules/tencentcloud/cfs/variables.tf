variable "name" {
  type        = string
  description = "Name of the file system; the access group is named after it."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,58}$", var.name))
    error_message = "name must be 1-59 characters: letters, digits, '_', '.' and '-', starting with a letter or digit."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC the mount target is created in (vpc-xxxxxxxx)."

  validation {
    condition     = can(regex("^vpc-[0-9a-z]{8}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-xxxxxxxx."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the mount target (subnet-xxxxxxxx); must be in availability_zone."

  validation {
    condition     = can(regex("^subnet-[0-9a-z]{8}$", var.subnet_id))
    error_message = "subnet_id must look like subnet-xxxxxxxx."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of the file system, e.g. ap-guangzhou-3."

  validation {
    condition     = can(regex("^[a-z]{2,}(-[a-z]+)+-[0-9]+$", var.availability_zone))
    error_message = "availability_zone must look like ap-guangzhou-3."
  }
}

variable "storage_type" {
  type        = string
  default     = "SD"
  description = "SD (standard) or HP (high performance). The Turbo types need CCN networking and are not supported by this module."

  validation {
    condition     = contains(["SD", "HP"], var.storage_type)
    error_message = "storage_type must be SD or HP."
  }
}

variable "protocol" {
  type        = string
  default     = "NFS"
  description = "NFS (Linux clients, e.g. Kubernetes volumes) or CIFS."

  validation {
    condition     = contains(["NFS", "CIFS"], var.protocol)
    error_message = "protocol must be NFS or CIFS."
  }
}

variable "allowed_cidrs" {
  type        = list(string)
  description = "Client ranges allowed to mount the file system (normally the VPC's CIDR), in priority order (at most 100)."

  validation {
    condition     = length(var.allowed_cidrs) > 0 && length(var.allowed_cidrs) <= 100 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must contain 1-100 IPv4 CIDRs."
  }
}

variable "read_only" {
  type        = bool
  default     = false
  description = "Mount read-only for every allowed client."
}

variable "user_permission" {
  type        = string
  default     = "no_root_squash"
  description = "Mapping of client users: no_root_squash (containers running as root keep root, common for Kubernetes volumes), root_squash, all_squash or no_all_squash."

  validation {
    condition     = contains(["no_root_squash", "root_squash", "all_squash", "no_all_squash"], var.user_permission)
    error_message = "user_permission must be no_root_squash, root_squash, all_squash or no_all_squash."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags of the file system."
}
