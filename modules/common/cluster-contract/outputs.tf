output "cluster_name" {
  description = "Name of the cluster (also the name of the only context in `kubeconfig`)."
  value       = var.cluster_name
}

output "api_endpoint" {
  description = "Base URL of the Kubernetes API server (the `server` of the selected context's cluster)."
  # A URL is not a secret, even though it comes out of a (sensitive) kubeconfig.
  value = nonsensitive(local.api_endpoint)
}

output "ca_certificate" {
  description = "PEM of the CA that signs the API server's certificate; null if the kubeconfig relies on the system CAs or skips verification."
  # A CA certificate is public.
  value = nonsensitive(local.ca_certificate)
}

output "credentials" {
  description = "How to authenticate: { type = \"token\" | \"client_certificate\" | \"exec\" | \"kubeconfig\", token, client_certificate, client_key, exec = { api_version, command, args, env } }; fields that do not apply are null."
  value       = local.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Self-contained kubeconfig YAML with one cluster, user and context, all named after the cluster."
  value       = local.kubeconfig
  sensitive   = true
}
