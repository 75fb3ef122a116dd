variable "name" {
  type        = string
  description = "Name of the VPC; subnets, gateways and route tables are named after it."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", var.name))
    error_message = "name must be 1-63 characters: letters, digits, '_', '.' and '-', starting with a letter or digit."
  }
}

variable "cidr_block" {
  type        = string
  default     = "10.0.0.0/16"
  description = "IPv4 range of the VPC (/16 to /24). Subnets are carved out of it with subnet_newbits."

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && try(tonumber(split("/", var.cidr_block)[1]) >= 16 && tonumber(split("/", var.cidr_block)[1]) <= 24, false)
    error_message = "cidr_block must be an IPv4 CIDR from /16 to /24."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones to spread the subnets over, e.g. [\"us-east-1a\", \"us-east-1b\"]; EKS needs at least two."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 to 6 distinct zones."
  }

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", z))])
    error_message = "every availability zone must look like us-east-1a."
  }
}

variable "subnet_newbits" {
  type        = number
  default     = 4
  description = "Bits added to the VPC prefix for each subnet (4 turns a /16 into /20 subnets). Public subnets take the first indexes, private subnets start at index 8."

  validation {
    condition     = var.subnet_newbits >= 4 && var.subnet_newbits <= 8 && floor(var.subnet_newbits) == var.subnet_newbits
    error_message = "subnet_newbits must be a whole number from 4 to 8 (there must be room for 8 + number of zones subnets)."
  }
}

variable "single_nat_gateway" {
  type        = bool
  default     = true
  description = "One NAT gateway for all private subnets (cheaper) instead of one per availability zone (survives the loss of a zone)."
}

variable "eks_cluster_name" {
  type        = string
  default     = null
  description = "Name of an EKS cluster that will use the subnets; adds the kubernetes.io/cluster/<name> and load-balancer role tags that EKS and its load balancer controller look for."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource of the module."
}
