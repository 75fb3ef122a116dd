# The common cluster output contract (docs/provisioning.md): cluster_name, api_endpoint, ca_certificate,
# credentials, kubeconfig. The same names and shapes come out of modules/tencentcloud/tke and modules/aws/eks.

output "cluster_name" {
  description = "Name of the cluster (also the name of the only context in `kubeconfig`)."
  value       = var.name
}

output "api_endpoint" {
  description = "Base URL of the Kubernetes API server, e.g. https://127.0.0.1:41234 for the cluster."
  value       = module.contract.api_endpoint
}

output "ca_certificate" {
  description = "PEM of the CA that signs the API server's certificate (null if the kubeconfig trusts the system CAs or skips verification)."
  value       = module.contract.ca_certificate
}

output "credentials" {
  description = "How to authenticate: { type = \"token\" | \"client_certificate\" | \"exec\" | \"kubeconfig\", token, client_certificate, client_key, exec = { api_version, command, args, env } }; fields that do not apply are null. The cluster uses a bearer token."
  value       = module.contract.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Self-contained kubeconfig YAML with one cluster, user and context, all named after the cluster."
  value       = module.contract.kubeconfig
  sensitive   = true
}

output "mode" {
  description = "\"local\" when this module started a local cluster (`kube-cluster`), \"existing\" when it passes through kubeconfig_path."
  value       = local.mode
}

output "kubeconfig_path" {
  description = "Path of the kubeconfig file the outputs were read from (the cluster's own file in local mode)."
  value       = local.kubeconfig_file
}

output "state_dir" {
  description = "Directory holding the cluster's kubeconfig, url, pid and log (null in existing mode)."
  value       = local.mode == "local" ? local.state_dir : null
}

output "cluster_pid" {
  description = "Process id of the running cluster (null in existing mode)."
  value       = local.cluster_pid == null ? null : tonumber(local.cluster_pid)
}

output "created_at" {
  description = "When the cluster resource was created (RFC 3339); a new value means a new cluster with a new CA and credentials."
  value       = local.created_at
}
