# The management node's own infrastructure on Tencent Cloud: a VPC with NAT egress, the control plane host
# (CVM with a fixed elastic IP, or a small TKE cluster) and the COS bucket that holds every cluster's
# Terraform state, plan files and build artifacts. PostgreSQL and ClickHouse are not created here (they run
# next to the control plane or are managed separately).
#
# Bootstrapping: this stack's own state lives in the bucket it creates. Apply it once with local state
# (see docs/provisioning.md), then move the state with `terraform init -migrate-state -backend-config=...`.

locals {
  tags = merge(var.tags, { "edgefleet-role" = "management" })

  subnets = [
    for i, zone in var.availability_zones : {
      name              = zone
      availability_zone = zone
      cidr_block        = cidrsubnet(var.vpc_cidr_block, 4, i)
    }
  ]

  ingress_rules = concat(
    [for c in var.api_allowed_cidrs : { protocol = "TCP", port = tostring(var.api_port), cidr_block = c, description = "edgefleet API and console" }],
    [for c in var.agent_allowed_cidrs : { protocol = "TCP", port = tostring(var.agent_port), cidr_block = c, description = "edgefleet agents (mTLS)" }],
    [for c in var.ssh_allowed_cidrs : { protocol = "TCP", port = "22", cidr_block = c, description = "ssh" }],
    [{ protocol = "ALL", port = "ALL", cidr_block = var.vpc_cidr_block, description = "VPC" }],
  )
}

module "vpc" {
  source = "../../modules/tencentcloud/vpc"

  name       = var.name
  cidr_block = var.vpc_cidr_block
  subnets    = local.subnets
  tags       = local.tags
}

module "nat" {
  source = "../../modules/tencentcloud/nat"

  name            = "${var.name}-nat"
  vpc_id          = module.vpc.vpc_id
  route_table_ids = [module.vpc.route_table_id]
  tags            = local.tags
}

module "state_bucket" {
  source = "../../modules/tencentcloud/cos"

  name = coalesce(var.state_bucket_name, "${var.name}-state")
  tags = local.tags
}

# cvm mode: control plane hosts; the first one gets the elastic IP agents and users connect to.
module "control_plane_host" {
  source = "../../modules/tencentcloud/cvm"
  count  = var.control_plane_mode == "cvm" ? 1 : 0

  name              = var.name
  instance_count    = var.instance_count
  instance_type     = var.instance_type
  availability_zone = var.availability_zones[0]
  vpc_id            = module.vpc.vpc_id
  subnet_id         = module.vpc.subnet_ids[0]
  ingress_rules     = local.ingress_rules
  system_disk_size  = var.system_disk_size
  key_ids           = var.key_ids
  user_data         = var.user_data
  tags              = local.tags

  depends_on = [module.nat]
}

resource "tencentcloud_eip" "control_plane" {
  count = var.control_plane_mode == "cvm" ? 1 : 0

  name                       = "${var.name}-api"
  internet_charge_type       = "TRAFFIC_POSTPAID_BY_HOUR"
  internet_max_bandwidth_out = 100
  tags                       = local.tags
}

resource "tencentcloud_eip_association" "control_plane" {
  count = var.control_plane_mode == "cvm" ? 1 : 0

  eip_id      = tencentcloud_eip.control_plane[0].id
  instance_id = module.control_plane_host[0].instance_ids[0]
}

# tke mode: a small managed cluster for the control plane.
module "control_plane_cluster" {
  source = "../../modules/tencentcloud/tke"
  count  = var.control_plane_mode == "tke" ? 1 : 0

  cluster_name       = var.name
  vpc_id             = module.vpc.vpc_id
  vpc_cidr_block     = module.vpc.cidr_block
  subnet_ids         = module.vpc.subnet_ids
  node_instance_type = var.instance_type
  node_count         = var.instance_count
  node_min_count     = var.instance_count
  node_max_count     = max(var.instance_count, 3)
  tags               = local.tags

  depends_on = [module.nat]
}

locals {
  public_ip = one(tencentcloud_eip.control_plane[*].public_ip)
  cluster   = one(module.control_plane_cluster)
}
