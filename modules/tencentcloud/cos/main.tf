# A private, versioned, encrypted COS bucket, e.g. for Terraform state (through COS's S3-compatible API),
# plan files, build contexts and exported logs.

data "tencentcloud_user_info" "current" {}

resource "tencentcloud_cos_bucket" "this" {
  bucket               = "${var.name}-${data.tencentcloud_user_info.current.app_id}"
  acl                  = var.acl
  versioning_enable    = var.versioning
  encryption_algorithm = var.encryption_algorithm == "" ? null : var.encryption_algorithm
  force_clean          = var.force_clean
  tags                 = var.tags

  dynamic "lifecycle_rules" {
    for_each = var.versioning && var.noncurrent_version_expiration_days > 0 ? [1] : []
    content {
      id            = "expire-noncurrent-versions"
      filter_prefix = ""

      non_current_expiration {
        non_current_days = var.noncurrent_version_expiration_days
      }

      abort_incomplete_multipart_upload {
        days_after_initiation = 7
      }
    }
  }
}

locals {
  # cos_bucket_url looks like https://<bucket>.cos.<region>.myqcloud.com
  region = try(regex("\\.cos\\.([a-z0-9-]+)\\.myqcloud\\.com", tencentcloud_cos_bucket.this.cos_bucket_url)[0], null)
}
