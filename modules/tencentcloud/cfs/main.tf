# A CFS (NFS) file system reachable from the VPC, with an access group whose rules say who may mount it.
# Shared storage for model files and demo data that pods mount as a volume.

resource "tencentcloud_cfs_access_group" "this" {
  name        = "${var.name}-access"
  description = "Clients of the ${var.name} file system"
}

resource "tencentcloud_cfs_access_rule" "this" {
  count = length(var.allowed_cidrs)

  access_group_id = tencentcloud_cfs_access_group.this.id
  auth_client_ip  = var.allowed_cidrs[count.index]
  priority        = count.index + 1
  rw_permission   = var.read_only ? "RO" : "RW"
  user_permission = var.user_permission
}

resource "tencentcloud_cfs_file_system" "this" {
  name              = var.name
  availability_zone = var.availability_zone
  access_group_id   = tencentcloud_cfs_access_group.this.id
  protocol          = var.protocol
  storage_type      = var.storage_type
  net_interface     = "VPC"
  vpc_id            = var.vpc_id
  subnet_id         = var.subnet_id
  tags              = var.tags

  depends_on = [tencentcloud_cfs_access_rule.this]
}
