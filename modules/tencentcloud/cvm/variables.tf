variable "name" {
  type        = string
  description = "Name prefix of the instances (<name>-<index>) and of the security group the module creates."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be 1-40 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'."
  }
}

variable "instance_count" {
  type        = number
  default     = 1
  description = "Number of identical instances (0-20)."

  validation {
    condition     = var.instance_count >= 0 && var.instance_count <= 20 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count must be a whole number from 0 to 20."
  }
}

variable "instance_type" {
  type        = string
  default     = "SA5.MEDIUM4"
  description = "CVM instance type, e.g. SA5.MEDIUM4 (2 vCPU, 4 GiB)."

  validation {
    condition     = can(regex("^[A-Z0-9]+[a-z]?\\.[A-Z0-9]+$", var.instance_type))
    error_message = "instance_type must look like SA5.MEDIUM4."
  }
}

variable "image_id" {
  type        = string
  default     = null
  description = "Image ID (img-xxxxxxxx); null picks the first public image whose name matches image_name_regex."

  validation {
    condition     = var.image_id == null || can(regex("^img-[0-9a-z]{8}$", var.image_id))
    error_message = "image_id must look like img-xxxxxxxx."
  }
}

variable "image_name_regex" {
  type        = string
  default     = "^Ubuntu Server 22\\.04"
  description = "Regular expression on public image names, used when image_id is null."

  validation {
    condition     = can(regexall(var.image_name_regex, ""))
    error_message = "image_name_regex must be a valid regular expression."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of the instances, e.g. ap-guangzhou-3."

  validation {
    condition     = can(regex("^[a-z]{2,}(-[a-z]+)+-[0-9]+$", var.availability_zone))
    error_message = "availability_zone must look like ap-guangzhou-3."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the instances (vpc-xxxxxxxx)."

  validation {
    condition     = can(regex("^vpc-[0-9a-z]{8}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-xxxxxxxx."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the instances (subnet-xxxxxxxx), in availability_zone."

  validation {
    condition     = can(regex("^subnet-[0-9a-z]{8}$", var.subnet_id))
    error_message = "subnet_id must look like subnet-xxxxxxxx."
  }
}

variable "ingress_rules" {
  type = list(object({
    protocol    = string
    port        = string
    cidr_block  = string
    description = string
  }))
  default     = []
  description = "Inbound rules of the instances' security group, in priority order, e.g. { protocol = \"TCP\", port = \"443\", cidr_block = \"0.0.0.0/0\", description = \"https\" }. Everything else inbound is dropped; all outbound traffic is allowed."

  validation {
    condition = alltrue([
      for r in var.ingress_rules :
      contains(["TCP", "UDP", "ICMP", "ALL"], r.protocol) && can(cidrhost(r.cidr_block, 0)) &&
      can(regex("^(ALL|[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5})*)$", r.port))
    ])
    error_message = "every ingress rule needs protocol TCP, UDP, ICMP or ALL, a port such as 443, 8000-8100, 80,443 or ALL, and an IPv4 cidr_block."
  }
}

variable "spot" {
  type        = bool
  default     = false
  description = "Use spot (preemptible, SPOTPAID) instances for cost."
}

variable "spot_max_price" {
  type        = string
  default     = "1000"
  description = "Highest hourly price (decimal string, CNY) for a spot instance."

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.spot_max_price))
    error_message = "spot_max_price must be a decimal string such as \"0.50\"."
  }
}

variable "system_disk_type" {
  type        = string
  default     = "CLOUD_PREMIUM"
  description = "System disk type: CLOUD_PREMIUM, CLOUD_SSD, CLOUD_HSSD, CLOUD_BSSD or CLOUD_TSSD."

  validation {
    condition     = contains(["CLOUD_PREMIUM", "CLOUD_SSD", "CLOUD_HSSD", "CLOUD_BSSD", "CLOUD_TSSD"], var.system_disk_type)
    error_message = "system_disk_type must be CLOUD_PREMIUM, CLOUD_SSD, CLOUD_HSSD, CLOUD_BSSD or CLOUD_TSSD."
  }
}

variable "system_disk_size" {
  type        = number
  default     = 50
  description = "System disk size in GB (20-1024)."

  validation {
    condition     = var.system_disk_size >= 20 && var.system_disk_size <= 1024 && floor(var.system_disk_size) == var.system_disk_size
    error_message = "system_disk_size must be a whole number of GB from 20 to 1024."
  }
}

variable "data_disk_size" {
  type        = number
  default     = 0
  description = "Size in GB of one CLOUD_PREMIUM data disk per instance, deleted with the instance; 0 means none."

  validation {
    condition     = var.data_disk_size == 0 || (var.data_disk_size >= 10 && var.data_disk_size <= 32000 && floor(var.data_disk_size) == var.data_disk_size)
    error_message = "data_disk_size must be 0 or a whole number of GB from 10 to 32000."
  }
}

variable "public_ip" {
  type        = bool
  default     = false
  description = "Give each instance a public IP (traffic-billed). Leave false behind a NAT gateway."
}

variable "internet_max_bandwidth_out" {
  type        = number
  default     = 10
  description = "Outbound bandwidth limit of the public IP in Mbps (1-200); only used with public_ip."

  validation {
    condition     = var.internet_max_bandwidth_out >= 1 && var.internet_max_bandwidth_out <= 200 && floor(var.internet_max_bandwidth_out) == var.internet_max_bandwidth_out
    error_message = "internet_max_bandwidth_out must be a whole number from 1 to 200."
  }
}

variable "key_ids" {
  type        = list(string)
  default     = []
  description = "SSH key pair IDs (skey-xxxxxxxx) to install."

  validation {
    condition     = alltrue([for id in var.key_ids : can(regex("^skey-[0-9a-z]{8}$", id))])
    error_message = "key_ids must be key pair IDs like skey-xxxxxxxx."
  }
}

variable "user_data" {
  type        = string
  default     = null
  description = "Plain-text cloud-init user data (at most 16 KB once base64 encoded), e.g. to install and start the control plane."

  validation {
    condition     = var.user_data == null || try(length(base64encode(var.user_data)) <= 16384, false)
    error_message = "user_data must be at most 16 KB once base64 encoded."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags of the instances and the security group."
}
