variable "name" {
  type        = string
  description = "Bucket name without the account's APPID suffix, which the module appends (COS requires <name>-<appid>)."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", var.name))
    error_message = "name must be 1-40 characters of lowercase letters, digits and '-', not starting or ending with '-'."
  }
}

variable "versioning" {
  type        = bool
  default     = true
  description = "Keep old versions of objects (recommended for Terraform state)."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  default     = 90
  description = "Delete old object versions this many days after they were replaced; 0 keeps them forever. Only used with versioning."

  validation {
    condition     = var.noncurrent_version_expiration_days >= 0 && var.noncurrent_version_expiration_days <= 3650 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number from 0 to 3650."
  }
}

variable "encryption_algorithm" {
  type        = string
  default     = "AES256"
  description = "Server-side encryption of new objects: AES256 (SSE-COS), KMS, SM4, or \"\" for none."

  validation {
    condition     = contains(["AES256", "KMS", "SM4", ""], var.encryption_algorithm)
    error_message = "encryption_algorithm must be AES256, KMS, SM4 or \"\"."
  }
}

variable "acl" {
  type        = string
  default     = "private"
  description = "Canned ACL: private, public-read or public-read-write. Keep it private for state and artifacts."

  validation {
    condition     = contains(["private", "public-read", "public-read-write"], var.acl)
    error_message = "acl must be private, public-read or public-read-write."
  }
}

variable "force_clean" {
  type        = bool
  default     = false
  description = "Delete all objects when the bucket is destroyed; when false a non-empty bucket cannot be destroyed."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags of the bucket."
}
