# The common cluster output contract (docs/provisioning.md).

output "cluster_name" {
  description = "Name of the cluster (also the name of the only context in `kubeconfig`)."
  value       = var.cluster_name
}

output "api_endpoint" {
  description = "HTTPS URL of the public Kubernetes API endpoint."
  value       = module.contract.api_endpoint
}

output "ca_certificate" {
  description = "PEM of the cluster CA that signs the API server's certificate."
  value       = coalesce(module.contract.ca_certificate, tencentcloud_kubernetes_cluster_endpoint.this.certification_authority)
}

output "credentials" {
  description = "How to authenticate: { type, token, client_certificate, client_key, exec }; TKE hands out a client certificate for the caller's CAM identity (type = \"client_certificate\")."
  value       = module.contract.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Self-contained kubeconfig YAML for the public endpoint, with one cluster, user and context named after the cluster."
  value       = module.contract.kubeconfig
  sensitive   = true
}

# Module-specific outputs.

output "cluster_id" {
  description = "TKE cluster ID (cls-xxxxxxxx)."
  value       = tencentcloud_kubernetes_cluster.this.id
}

output "intranet_kubeconfig" {
  description = "Kubeconfig for the intranet endpoint (null unless intranet_endpoint is true)."
  value       = var.intranet_endpoint ? tencentcloud_kubernetes_cluster_endpoint.this.kube_config_intranet : null
  sensitive   = true
}

output "node_security_group_id" {
  description = "Security group of the nodes (e.g. to let them reach a CFS file system)."
  value       = tencentcloud_security_group.nodes.id
}

output "node_pool_id" {
  description = "ID of the node pool (CVM or serverless)."
  value       = one(concat(tencentcloud_kubernetes_node_pool.this[*].id, tencentcloud_kubernetes_serverless_node_pool.this[*].id))
}
