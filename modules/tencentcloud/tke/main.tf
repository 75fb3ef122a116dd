# A managed TKE cluster with either a CVM node pool (optionally spot instances) or serverless super nodes,
# a public API endpoint behind a security group, and the common cluster output contract read from the
# endpoint's kubeconfig.

locals {
  # Node pool names are limited to 25 characters.
  pool_name = substr("${var.cluster_name}-pool", 0, 25)
}

resource "tencentcloud_security_group" "endpoint" {
  name        = "${var.cluster_name}-apiserver"
  description = "Kubernetes API endpoint of ${var.cluster_name}"
  tags        = var.tags
}

resource "tencentcloud_security_group_rule_set" "endpoint" {
  security_group_id = tencentcloud_security_group.endpoint.id

  dynamic "ingress" {
    for_each = var.endpoint_allowed_cidrs
    content {
      action      = "ACCEPT"
      cidr_block  = ingress.value
      protocol    = "TCP"
      port        = "443"
      description = "kube-apiserver"
    }
  }

  egress {
    action      = "ACCEPT"
    cidr_block  = "0.0.0.0/0"
    protocol    = "ALL"
    port        = "ALL"
    description = "all egress"
  }
}

resource "tencentcloud_security_group" "nodes" {
  name        = "${var.cluster_name}-nodes"
  description = "Nodes of ${var.cluster_name}"
  tags        = var.tags
}

resource "tencentcloud_security_group_rule_set" "nodes" {
  security_group_id = tencentcloud_security_group.nodes.id

  ingress {
    action      = "ACCEPT"
    cidr_block  = var.vpc_cidr_block
    protocol    = "ALL"
    port        = "ALL"
    description = "VPC"
  }

  ingress {
    action      = "ACCEPT"
    cidr_block  = var.cluster_cidr
    protocol    = "ALL"
    port        = "ALL"
    description = "pods and services"
  }

  # Everything else inbound is dropped: the node agent only makes outbound connections.
  egress {
    action      = "ACCEPT"
    cidr_block  = "0.0.0.0/0"
    protocol    = "ALL"
    port        = "ALL"
    description = "all egress (through the NAT gateway)"
  }
}

resource "tencentcloud_kubernetes_cluster" "this" {
  vpc_id                     = var.vpc_id
  cluster_name               = var.cluster_name
  cluster_desc               = "edgefleet cluster ${var.cluster_name}"
  cluster_version            = var.cluster_version
  cluster_deploy_type        = "MANAGED_CLUSTER"
  network_type               = "GR"
  cluster_cidr               = var.cluster_cidr
  cluster_max_pod_num        = var.max_pods_per_node
  cluster_max_service_num    = var.max_services
  container_runtime          = "containerd"
  deletion_protection        = var.deletion_protection
  acquire_cluster_admin_role = true
  tags                       = var.tags

  # The endpoints are managed by tencentcloud_kubernetes_cluster_endpoint below (the provider says not to
  # use both ways at once), and only once there are nodes.
}

resource "tencentcloud_kubernetes_node_pool" "this" {
  count = var.node_pool_type == "cvm" ? 1 : 0

  name                     = local.pool_name
  cluster_id               = tencentcloud_kubernetes_cluster.this.id
  vpc_id                   = var.vpc_id
  subnet_ids               = var.subnet_ids
  min_size                 = var.node_min_count
  max_size                 = var.node_max_count
  desired_capacity         = var.node_count
  enable_auto_scale        = true
  multi_zone_subnet_policy = "EQUALITY"
  retry_policy             = "INCREMENTAL_INTERVALS"
  delete_keep_instance     = false
  node_os                  = var.node_os
  labels = merge(var.node_labels, {
    "edgefleet.io/capacity-type" = var.spot ? "spot" : "on-demand"
  })
  tags = var.tags

  auto_scaling_config {
    instance_type              = var.node_instance_type
    instance_charge_type       = var.spot ? "SPOTPAID" : "POSTPAID_BY_HOUR"
    spot_instance_type         = var.spot ? "one-time" : null
    spot_max_price             = var.spot ? var.spot_max_price : null
    system_disk_type           = var.node_system_disk_type
    system_disk_size           = var.node_system_disk_size
    orderly_security_group_ids = [tencentcloud_security_group.nodes.id]
    # No public IPs on nodes: egress goes through the VPC's NAT gateway.
    public_ip_assigned         = false
    internet_max_bandwidth_out = 0
    key_ids                    = length(var.node_key_ids) > 0 ? var.node_key_ids : null
    enhanced_security_service  = false
    enhanced_monitor_service   = true
    host_name_style            = "ORIGINAL"
    instance_name              = "${var.cluster_name}-node"
  }

  lifecycle {
    # Auto scaling moves the desired size; do not fight it on every apply.
    ignore_changes = [desired_capacity]
  }
}

resource "tencentcloud_kubernetes_serverless_node_pool" "this" {
  count = var.node_pool_type == "serverless" ? 1 : 0

  cluster_id         = tencentcloud_kubernetes_cluster.this.id
  name               = local.pool_name
  security_group_ids = [tencentcloud_security_group.nodes.id]
  labels             = var.node_labels

  # One super node per subnet, i.e. per availability zone.
  dynamic "serverless_nodes" {
    for_each = var.subnet_ids
    content {
      display_name = "${var.cluster_name}-super-${serverless_nodes.key}"
      subnet_id    = serverless_nodes.value
    }
  }
}

resource "tencentcloud_kubernetes_cluster_endpoint" "this" {
  cluster_id                      = tencentcloud_kubernetes_cluster.this.id
  cluster_internet                = true
  cluster_internet_security_group = tencentcloud_security_group.endpoint.id
  cluster_intranet                = var.intranet_endpoint
  cluster_intranet_subnet_id      = var.intranet_endpoint ? var.subnet_ids[0] : null

  # TKE only opens endpoints of clusters that have nodes.
  depends_on = [
    tencentcloud_kubernetes_node_pool.this,
    tencentcloud_kubernetes_serverless_node_pool.this,
    tencentcloud_security_group_rule_set.endpoint,
  ]
}

# The contract outputs come from the public endpoint's kubeconfig. TKE issues it for the caller's CAM
# identity (client certificate); acquire_cluster_admin_role binds that identity to cluster-admin.
module "contract" {
  source = "../../common/cluster-contract"

  cluster_name = var.cluster_name
  kubeconfig   = tencentcloud_kubernetes_cluster_endpoint.this.kube_config
}
