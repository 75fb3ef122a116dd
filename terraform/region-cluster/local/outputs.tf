# The common cluster output contract (docs/provisioning.md).

output "cluster_name" {
  description = "Name of the cluster."
  value       = module.cluster.cluster_name
}

output "api_endpoint" {
  description = "HTTPS URL of the Kubernetes API server."
  value       = module.cluster.api_endpoint
}

output "ca_certificate" {
  description = "PEM of the CA that signs the API server's certificate."
  value       = module.cluster.ca_certificate
}

output "credentials" {
  description = "How to authenticate: { type, token, client_certificate, client_key, exec } (a local cluster uses a client certificate)."
  value       = module.cluster.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Self-contained kubeconfig YAML with one context named after the cluster."
  value       = module.cluster.kubeconfig
  sensitive   = true
}

# Stack-specific outputs.

output "mode" {
  description = "\"local\" or \"existing\"."
  value       = module.cluster.mode
}

output "cluster_pid" {
  description = "Process id of the cluster (null for an existing cluster)."
  value       = module.cluster.cluster_pid
}

output "state_dir" {
  description = "Directory of the cluster's files (null for an existing cluster)."
  value       = module.cluster.state_dir
}
