# The common cluster output contract (docs/provisioning.md).

output "cluster_name" {
  description = "Name of the cluster."
  value       = module.cluster.cluster_name
}

output "api_endpoint" {
  description = "HTTPS URL of the cluster's public Kubernetes API endpoint."
  value       = module.cluster.api_endpoint
}

output "ca_certificate" {
  description = "PEM of the cluster CA."
  value       = module.cluster.ca_certificate
}

output "credentials" {
  description = "How to authenticate: { type, token, client_certificate, client_key, exec } (TKE: a client certificate for the caller's CAM identity)."
  value       = module.cluster.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Self-contained kubeconfig YAML with one context named after the cluster."
  value       = module.cluster.kubeconfig
  sensitive   = true
}

# Stack-specific outputs.

output "cluster_id" {
  description = "TKE cluster ID."
  value       = module.cluster.cluster_id
}

output "vpc_id" {
  description = "ID of the region's VPC."
  value       = module.vpc.vpc_id
}

output "subnet_ids" {
  description = "Subnet IDs, one per availability zone."
  value       = module.vpc.subnet_ids
}

output "egress_ips" {
  description = "Public IPs the cluster's traffic leaves through (NAT gateway), e.g. for allow-lists."
  value       = module.nat.public_ips
}

output "bucket" {
  description = "COS bucket of the region (null when create_bucket is false)."
  value       = one(module.bucket[*].bucket)
}

output "bucket_s3_endpoint" {
  description = "S3-compatible endpoint of the bucket's region (null when create_bucket is false)."
  value       = one(module.bucket[*].s3_endpoint)
}

output "file_system" {
  description = "NFS server and path of the CFS file system: { server, path } (null when create_file_system is false)."
  value       = one(module.file_system[*].nfs_server)
}
