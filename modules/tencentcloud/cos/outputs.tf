output "bucket" {
  description = "Full bucket name (<name>-<appid>), as used by COS and S3 clients."
  value       = tencentcloud_cos_bucket.this.bucket
}

output "bucket_url" {
  description = "Virtual-hosted URL of the bucket."
  value       = tencentcloud_cos_bucket.this.cos_bucket_url
}

output "region" {
  description = "Region of the bucket, e.g. ap-guangzhou."
  value       = local.region
}

output "s3_endpoint" {
  description = "S3-compatible endpoint of COS in the bucket's region (for Terraform's S3 backend or aws-sdk-s3 with the COS secret id/key)."
  value       = local.region == null ? null : "https://cos.${local.region}.myqcloud.com"
}
