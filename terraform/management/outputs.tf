# The common cluster output contract (docs/provisioning.md): the management cluster in tke mode, null in
# cvm mode (there is no Kubernetes cluster then).

output "cluster_name" {
  description = "Name of the management cluster (tke mode; null in cvm mode)."
  value       = try(local.cluster.cluster_name, null)
}

output "api_endpoint" {
  description = "HTTPS URL of the management cluster's Kubernetes API (tke mode; null in cvm mode)."
  value       = try(local.cluster.api_endpoint, null)
}

output "ca_certificate" {
  description = "PEM of the management cluster's CA (tke mode; null in cvm mode)."
  value       = try(local.cluster.ca_certificate, null)
}

output "credentials" {
  description = "How to authenticate to the management cluster: { type, token, client_certificate, client_key, exec } (tke mode; null in cvm mode)."
  value       = try(local.cluster.credentials, null)
  sensitive   = true
}

output "kubeconfig" {
  description = "Kubeconfig YAML of the management cluster (tke mode; null in cvm mode)."
  value       = try(local.cluster.kubeconfig, null)
  sensitive   = true
}

# Stack-specific outputs.

output "control_plane_public_ip" {
  description = "Elastic IP of the control plane host (cvm mode; null in tke mode)."
  value       = local.public_ip
}

output "control_plane_private_ips" {
  description = "Private IPs of the control plane hosts (cvm mode; empty in tke mode)."
  value       = try(module.control_plane_host[0].private_ips, [])
}

output "api_url" {
  description = "URL of the REST API and console on the elastic IP (cvm mode; null in tke mode)."
  value       = local.public_ip == null ? null : "https://${local.public_ip}${var.api_port == 443 ? "" : ":${var.api_port}"}"
}

output "agent_endpoint" {
  description = "host:port agents connect to (cvm mode; null in tke mode). Put this address into the control plane's agent TLS names."
  value       = local.public_ip == null ? null : "${local.public_ip}:${var.agent_port}"
}

output "egress_ips" {
  description = "Public IPs the management VPC's outbound traffic leaves through (allow-list them on user clusters' API endpoints)."
  value       = module.nat.public_ips
}

output "state_bucket" {
  description = "COS bucket for Terraform state, plan files and artifacts (<name>-<appid>)."
  value       = module.state_bucket.bucket
}

output "state_bucket_region" {
  description = "Region of the state bucket."
  value       = module.state_bucket.region
}

output "state_bucket_s3_endpoint" {
  description = "S3-compatible endpoint for the state bucket (the `endpoints.s3` backend setting)."
  value       = module.state_bucket.s3_endpoint
}

output "vpc_id" {
  description = "ID of the management VPC."
  value       = module.vpc.vpc_id
}
