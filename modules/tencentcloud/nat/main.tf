# Internet egress for private subnets: elastic IPs, a NAT gateway that uses them, and a route through the
# gateway in each given route table. Nodes and CVMs behind it need no public IP of their own, which is how the
# node agent reaches the control plane without any inbound port being opened in the region.

resource "tencentcloud_eip" "this" {
  count = var.eip_count

  name                       = "${var.name}-${count.index}"
  internet_charge_type       = var.eip_charge_type
  internet_max_bandwidth_out = var.eip_bandwidth_mbps
  tags                       = var.tags
}

resource "tencentcloud_nat_gateway" "this" {
  name             = var.name
  vpc_id           = var.vpc_id
  bandwidth        = var.bandwidth_mbps
  max_concurrent   = var.max_concurrent_connections
  assigned_eip_set = tencentcloud_eip.this[*].public_ip
  tags             = var.tags
}

resource "tencentcloud_route_table_entry" "this" {
  # count, not for_each: the IDs are usually unknown until the VPC exists, the number of them is not.
  count = length(var.route_table_ids)

  route_table_id         = var.route_table_ids[count.index]
  destination_cidr_block = var.destination_cidr_block
  next_type              = "NAT"
  next_hub               = tencentcloud_nat_gateway.this.id
  description            = "egress via ${var.name}"
}
