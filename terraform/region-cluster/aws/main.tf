# Region stack for AWS: network (VPC with public and private subnets per zone, NAT), an EKS cluster with a
# managed node group (on-demand or spot) and an S3 bucket for one user region.

data "aws_caller_identity" "current" {}

locals {
  tags        = merge(var.tags, { "edgefleet-cluster" = var.cluster_name })
  bucket_name = var.bucket_name != null ? var.bucket_name : "${var.cluster_name}-${data.aws_caller_identity.current.account_id}"
}

module "vpc" {
  source = "../../../modules/aws/vpc"

  name               = var.cluster_name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  eks_cluster_name   = var.cluster_name
}

module "cluster" {
  source = "../../../modules/aws/eks"

  cluster_name        = var.cluster_name
  kubernetes_version  = var.kubernetes_version
  subnet_ids          = module.vpc.private_subnet_ids
  capacity_type       = var.capacity_type
  instance_types      = var.instance_types
  node_count          = var.node_count
  node_min_count      = var.node_min_count
  node_max_count      = var.node_max_count
  public_access_cidrs = var.public_access_cidrs

  # Nodes live in private subnets: they need the NAT routes before they can join.
  depends_on = [module.vpc]
}

module "bucket" {
  source = "../../../modules/aws/s3"
  count  = var.create_bucket ? 1 : 0

  bucket = local.bucket_name
}
