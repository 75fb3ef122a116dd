variable "bucket" {
  type        = string
  description = "Globally unique bucket name (3-63 characters: lowercase letters, digits, '-' and '.')."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket)) && !can(regex("\\.\\.|^\\d+\\.\\d+\\.\\d+\\.\\d+$|^xn--|-s3alias$", var.bucket))
    error_message = "bucket must be a valid S3 bucket name: 3-63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, not an IP address."
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
    condition     = var.noncurrent_version_expiration_days >= 0 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number >= 0."
  }
}

variable "kms_key_arn" {
  type        = string
  default     = null
  description = "KMS key for server-side encryption (aws:kms); null uses S3-managed keys (AES256)."

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:...)."
  }
}

variable "force_destroy" {
  type        = bool
  default     = false
  description = "Delete all objects (and versions) when the bucket is destroyed; when false a non-empty bucket cannot be destroyed."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags of the bucket."
}
