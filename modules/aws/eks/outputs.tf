# The common cluster output contract (docs/provisioning.md).

output "cluster_name" {
  description = "Name of the cluster (also the name of the only context in `kubeconfig`)."
  value       = aws_eks_cluster.this.name
}

output "api_endpoint" {
  description = "HTTPS URL of the Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "ca_certificate" {
  description = "PEM of the cluster CA that signs the API server's certificate."
  value       = local.ca_certificate
}

output "credentials" {
  description = "How to authenticate: type = \"exec\" (`aws eks get-token`, needs AWS credentials in the environment); `token` additionally holds a bearer token valid for about 15 minutes after the apply, for bootstrapping."
  value       = local.credentials
  sensitive   = true
}

output "kubeconfig" {
  description = "Kubeconfig YAML with one cluster, user and context named after the cluster; the user runs the exec plugin `aws eks get-token`."
  value       = local.kubeconfig
  sensitive   = true
}

# Module-specific outputs.

output "cluster_arn" {
  description = "ARN of the cluster."
  value       = aws_eks_cluster.this.arn
}

output "region" {
  description = "AWS region of the cluster."
  value       = local.region
}

output "oidc_issuer_url" {
  description = "OIDC issuer of the cluster (for IAM roles for service accounts)."
  value       = try(aws_eks_cluster.this.identity[0].oidc[0].issuer, null)
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_role_arn" {
  description = "IAM role of the nodes (attach more policies to it if pods need AWS access)."
  value       = aws_iam_role.node.arn
}

output "node_group_name" {
  description = "Name of the managed node group."
  value       = aws_eks_node_group.this.node_group_name
}
