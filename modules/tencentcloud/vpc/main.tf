# A VPC with subnets across availability zones. All subnets use one route table of the module's own
# (not the VPC's default one), so modules/tencentcloud/nat can send their internet-bound traffic through a
# NAT gateway by adding a single route to it.

resource "tencentcloud_vpc" "this" {
  name        = var.name
  cidr_block  = var.cidr_block
  dns_servers = length(var.dns_servers) > 0 ? var.dns_servers : null
  tags        = var.tags
}

resource "tencentcloud_route_table" "this" {
  name   = "${var.name}-rt"
  vpc_id = tencentcloud_vpc.this.id
  tags   = var.tags
}

resource "tencentcloud_subnet" "this" {
  for_each = { for s in var.subnets : s.name => s }

  name              = "${var.name}-${each.key}"
  vpc_id            = tencentcloud_vpc.this.id
  availability_zone = each.value.availability_zone
  cidr_block        = each.value.cidr_block
  route_table_id    = tencentcloud_route_table.this.id
  tags              = var.tags
}
