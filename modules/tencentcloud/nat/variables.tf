variable "name" {
  type        = string
  description = "Name of the NAT gateway; the EIPs are named after it."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,58}$", var.name))
    error_message = "name must be 1-59 characters: letters, digits, '_', '.' and '-', starting with a letter or digit."
  }
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC the NAT gateway serves (vpc-xxxxxxxx)."

  validation {
    condition     = can(regex("^vpc-[0-9a-z]{8}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-xxxxxxxx."
  }
}

variable "route_table_ids" {
  type        = list(string)
  description = "Route tables (rtb-xxxxxxxx) that get a route for destination_cidr_block through the NAT gateway, e.g. [module.vpc.route_table_id]."

  validation {
    condition     = length(var.route_table_ids) > 0 && alltrue([for id in var.route_table_ids : can(regex("^rtb-[0-9a-z]{8}$", id))])
    error_message = "route_table_ids must contain at least one route table ID like rtb-xxxxxxxx."
  }
}

variable "destination_cidr_block" {
  type        = string
  default     = "0.0.0.0/0"
  description = "Destination sent through the NAT gateway; 0.0.0.0/0 gives the subnets internet egress."

  validation {
    condition     = can(cidrhost(var.destination_cidr_block, 0))
    error_message = "destination_cidr_block must be an IPv4 CIDR."
  }
}

variable "eip_count" {
  type        = number
  default     = 1
  description = "Number of elastic IPs to allocate and bind to the gateway (1-10); their addresses are the region's egress IPs."

  validation {
    condition     = var.eip_count >= 1 && var.eip_count <= 10 && floor(var.eip_count) == var.eip_count
    error_message = "eip_count must be a whole number from 1 to 10."
  }
}

variable "eip_charge_type" {
  type        = string
  default     = "TRAFFIC_POSTPAID_BY_HOUR"
  description = "How the EIPs are billed: TRAFFIC_POSTPAID_BY_HOUR, BANDWIDTH_POSTPAID_BY_HOUR or BANDWIDTH_PACKAGE."

  validation {
    condition     = contains(["TRAFFIC_POSTPAID_BY_HOUR", "BANDWIDTH_POSTPAID_BY_HOUR", "BANDWIDTH_PACKAGE"], var.eip_charge_type)
    error_message = "eip_charge_type must be TRAFFIC_POSTPAID_BY_HOUR, BANDWIDTH_POSTPAID_BY_HOUR or BANDWIDTH_PACKAGE."
  }
}

variable "eip_bandwidth_mbps" {
  type        = number
  default     = 100
  description = "Outbound bandwidth limit of each EIP in Mbps (1-1000)."

  validation {
    condition     = var.eip_bandwidth_mbps >= 1 && var.eip_bandwidth_mbps <= 1000 && floor(var.eip_bandwidth_mbps) == var.eip_bandwidth_mbps
    error_message = "eip_bandwidth_mbps must be a whole number from 1 to 1000."
  }
}

variable "bandwidth_mbps" {
  type        = number
  default     = 100
  description = "Maximum outbound bandwidth of the (traditional) NAT gateway in Mbps: 20, 50, 100, 200, 500, 1000, 2000 or 5000."

  validation {
    condition     = contains([20, 50, 100, 200, 500, 1000, 2000, 5000], var.bandwidth_mbps)
    error_message = "bandwidth_mbps must be one of 20, 50, 100, 200, 500, 1000, 2000, 5000."
  }
}

variable "max_concurrent_connections" {
  type        = number
  default     = 1000000
  description = "Connection limit of the NAT gateway: 1000000, 3000000 or 10000000."

  validation {
    condition     = contains([1000000, 3000000, 10000000], var.max_concurrent_connections)
    error_message = "max_concurrent_connections must be 1000000, 3000000 or 10000000."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource of the module."
}
