variable "name" {
  type        = string
  description = "Name of the VPC; subnets and the route table are named after it."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,58}$", var.name))
    error_message = "name must be 1-59 characters: letters, digits, '_', '.' and '-', starting with a letter or digit."
  }
}

variable "cidr_block" {
  type        = string
  default     = "10.0.0.0/16"
  description = "IPv4 range of the VPC; must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 with a prefix of /12 to /28."

  validation {
    condition = can(cidrhost(var.cidr_block, 0)) && anytrue([
      for private in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] :
      can(cidrhost(var.cidr_block, 0)) && cidrhost(private, 0) == cidrhost("${cidrhost(var.cidr_block, 0)}/${split("/", private)[1]}", 0) && tonumber(split("/", var.cidr_block)[1]) >= tonumber(split("/", private)[1])
    ]) && tonumber(split("/", var.cidr_block)[1]) <= 28
    error_message = "cidr_block must be an IPv4 CIDR inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, at most /28."
  }
}

variable "subnets" {
  type = list(object({
    name              = string
    availability_zone = string
    cidr_block        = string
  }))
  description = "Subnets to create, typically one per availability zone (e.g. { name = \"a\", availability_zone = \"ap-guangzhou-3\", cidr_block = \"10.0.0.0/20\" }). Names must be unique; CIDRs must lie inside cidr_block and not overlap."

  validation {
    condition     = length(var.subnets) > 0
    error_message = "subnets must contain at least one subnet."
  }

  validation {
    condition     = length(distinct([for s in var.subnets : s.name])) == length(var.subnets)
    error_message = "subnet names must be unique."
  }

  validation {
    condition     = alltrue([for s in var.subnets : can(regex("^[a-z]{2,}(-[a-z]+)+-[0-9]+$", s.availability_zone))])
    error_message = "every availability_zone must look like ap-guangzhou-3."
  }

  validation {
    condition = alltrue([
      for s in var.subnets : can(cidrhost(s.cidr_block, 0)) && can(cidrhost(var.cidr_block, 0)) &&
      tonumber(split("/", s.cidr_block)[1]) >= tonumber(split("/", var.cidr_block)[1]) &&
      cidrhost("${cidrhost(s.cidr_block, 0)}/${split("/", var.cidr_block)[1]}", 0) == cidrhost(var.cidr_block, 0)
    ])
    error_message = "every subnet cidr_block must be a valid IPv4 CIDR inside the VPC's cidr_block."
  }
}

variable "dns_servers" {
  type        = list(string)
  default     = []
  description = "DNS servers of the VPC (0-5 IPv4 addresses); empty keeps Tencent Cloud's defaults."

  validation {
    condition     = length(var.dns_servers) <= 5 && alltrue([for ip in var.dns_servers : can(cidrhost("${ip}/32", 0))])
    error_message = "dns_servers takes at most 5 IPv4 addresses."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags for every resource of the module."
}
