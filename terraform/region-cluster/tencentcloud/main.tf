# Region stack for Tencent Cloud: network (VPC, one subnet per zone, NAT gateway for egress), a TKE cluster
# (CVM or serverless nodes) and storage (COS bucket, optional CFS file system) for one user region.

locals {
  tags = merge(var.tags, { "edgefleet-cluster" = var.cluster_name })

  # One subnet per zone: the VPC range split in 16 (a /16 gives /20 subnets of 4096 addresses).
  subnets = [
    for i, zone in var.availability_zones : {
      name              = zone
      availability_zone = zone
      cidr_block        = cidrsubnet(var.vpc_cidr_block, 4, i)
    }
  ]
}

module "vpc" {
  source = "../../../modules/tencentcloud/vpc"

  name       = var.cluster_name
  cidr_block = var.vpc_cidr_block
  subnets    = local.subnets
  tags       = local.tags
}

module "nat" {
  source = "../../../modules/tencentcloud/nat"

  name            = "${var.cluster_name}-nat"
  vpc_id          = module.vpc.vpc_id
  route_table_ids = [module.vpc.route_table_id]
  tags            = local.tags
}

module "cluster" {
  source = "../../../modules/tencentcloud/tke"

  cluster_name           = var.cluster_name
  cluster_version        = var.kubernetes_version
  vpc_id                 = module.vpc.vpc_id
  vpc_cidr_block         = module.vpc.cidr_block
  subnet_ids             = module.vpc.subnet_ids
  cluster_cidr           = var.cluster_cidr
  node_pool_type         = var.node_pool_type
  spot                   = var.spot
  node_instance_type     = var.node_instance_type
  node_count             = var.node_count
  node_min_count         = var.node_min_count
  node_max_count         = var.node_max_count
  endpoint_allowed_cidrs = var.endpoint_allowed_cidrs
  tags                   = local.tags

  # Nodes have no public IPs: they need the NAT route before they can pull images and join.
  depends_on = [module.nat]
}

module "bucket" {
  source = "../../../modules/tencentcloud/cos"
  count  = var.create_bucket ? 1 : 0

  name = var.cluster_name
  tags = local.tags
}

module "file_system" {
  source = "../../../modules/tencentcloud/cfs"
  count  = var.create_file_system ? 1 : 0

  name              = "${var.cluster_name}-fs"
  vpc_id            = module.vpc.vpc_id
  subnet_id         = module.vpc.subnet_ids[0]
  availability_zone = var.availability_zones[0]
  allowed_cidrs     = [var.vpc_cidr_block]
  tags              = local.tags
}
