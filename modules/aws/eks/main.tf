# An EKS cluster with a managed node group (on-demand or spot) and the IAM roles both need. Access uses EKS
# access entries: the identity that creates the cluster (the control plane's AWS credentials) becomes cluster
# admin, and the kubeconfig authenticates through `aws eks get-token`.

data "aws_partition" "current" {}

locals {
  partition       = data.aws_partition.current.partition
  node_subnet_ids = var.node_subnet_ids != null ? var.node_subnet_ids : var.subnet_ids

  assume_role = {
    for name, service in { cluster = "eks.amazonaws.com", node = "ec2.amazonaws.com" } : name => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Principal = { Service = service }
        Action    = ["sts:AssumeRole", "sts:TagSession"]
      }]
    })
  }
}

resource "aws_iam_role" "cluster" {
  name_prefix        = substr("${var.cluster_name}-cluster-", 0, 38)
  assume_role_policy = local.assume_role.cluster
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each = toset(["AmazonEKSClusterPolicy"])

  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_role" "node" {
  name_prefix        = substr("${var.cluster_name}-node-", 0, 38)
  assume_role_policy = local.assume_role.node
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_eks_cluster" "this" {
  name                      = var.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = var.enabled_cluster_log_types
  tags                      = var.tags

  vpc_config {
    subnet_ids              = var.subnet_ids
    endpoint_public_access  = var.endpoint_public_access
    endpoint_private_access = true
    public_access_cidrs     = var.public_access_cidrs
  }

  access_config {
    authentication_mode                         = "API_AND_CONFIG_MAP"
    bootstrap_cluster_creator_admin_permissions = true
  }

  # The role's permissions must exist while EKS creates and deletes the cluster's network interfaces.
  depends_on = [aws_iam_role_policy_attachment.cluster]
}

resource "aws_eks_node_group" "this" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.cluster_name}-${lower(replace(var.capacity_type, "_", "-"))}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = local.node_subnet_ids
  capacity_type   = var.capacity_type
  instance_types  = var.instance_types
  ami_type        = var.ami_type
  disk_size       = var.disk_size
  labels = merge(var.node_labels, {
    "edgefleet.io/capacity-type" = var.capacity_type == "SPOT" ? "spot" : "on-demand"
  })
  tags = var.tags

  scaling_config {
    desired_size = var.node_count
    min_size     = var.node_min_count
    max_size     = var.node_max_count
  }

  update_config {
    max_unavailable = 1
  }

  lifecycle {
    # Cluster autoscalers move the desired size; do not fight them on every apply.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# A bearer token for the cluster, valid for about 15 minutes: enough to bootstrap the node agent right after
# the apply. Long-lived access goes through the exec plugin in the kubeconfig.
data "aws_eks_cluster_auth" "this" {
  name = aws_eks_cluster.this.name
}

locals {
  # arn:<partition>:eks:<region>:<account>:cluster/<name>
  region = split(":", aws_eks_cluster.this.arn)[3]

  ca_certificate = base64decode(aws_eks_cluster.this.certificate_authority[0].data)

  exec = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = var.aws_cli_command
    args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.this.name, "--region", local.region, "--output", "json"]
    env         = {}
  }

  credentials = {
    type               = "exec"
    token              = data.aws_eks_cluster_auth.this.token
    client_certificate = null
    client_key         = null
    exec               = local.exec
  }

  kubeconfig = yamlencode({
    apiVersion = "v1"
    kind       = "Config"
    clusters = [{
      name = var.cluster_name
      cluster = {
        server                       = aws_eks_cluster.this.endpoint
        "certificate-authority-data" = aws_eks_cluster.this.certificate_authority[0].data
      }
    }]
    users = [{
      name = var.cluster_name
      user = {
        exec = {
          apiVersion      = local.exec.api_version
          command         = local.exec.command
          args            = local.exec.args
          interactiveMode = "Never"
        }
      }
    }]
    contexts = [{
      name    = var.cluster_name
      context = { cluster = var.cluster_name, user = var.cluster_name }
    }]
    "current-context" = var.cluster_name
    preferences       = {}
  })
}
