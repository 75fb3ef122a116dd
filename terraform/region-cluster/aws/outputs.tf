# The common cluster output contract (docs/provisioning.md).

output "cluster_name" {
  description = "Name of the cluster."
  value       = module.cluster.cluster_name
}

output "api_endpoint" {
  description = "HTTPS URL of the EKS API endpoint."
  value       = module.cluster.api_endpoint
}

output "ca_certificate" {
  description = "PEM of the cluster CA."
  value       = module.cluster.ca_certificate
}

output "credentials" {
  description = "How to authenticate: type = \"exec\" (aws eks get-token) plus a bearer token valid for about 15 minutes after the apply."
  value       = module.cluster.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Kubeconfig YAML with one context named after the cluster, authenticating through `aws eks get-token`."
  value       = module.cluster.kubeconfig
  sensitive   = true
}

# Stack-specific outputs.

output "vpc_id" {
  description = "ID of the region's VPC."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets (nodes)."
  value       = module.vpc.private_subnet_ids
}

output "egress_ips" {
  description = "Public IPs the cluster's traffic leaves through (NAT gateways)."
  value       = module.vpc.nat_public_ips
}

output "bucket" {
  description = "S3 bucket of the region (null when create_bucket is false)."
  value       = one(module.bucket[*].bucket)
}
