output "vpc_id" {
  description = "ID of the VPC (vpc-xxxxxxxx)."
  value       = tencentcloud_vpc.this.id
}

output "cidr_block" {
  description = "IPv4 range of the VPC."
  value       = tencentcloud_vpc.this.cidr_block
}

output "subnet_ids" {
  description = "Subnet IDs in the order of var.subnets."
  value       = [for s in var.subnets : tencentcloud_subnet.this[s.name].id]
}

output "subnets" {
  description = "Subnets by name: { id, availability_zone, cidr_block }."
  value = {
    for name, s in tencentcloud_subnet.this : name => {
      id                = s.id
      availability_zone = s.availability_zone
      cidr_block        = s.cidr_block
    }
  }
}

output "availability_zones" {
  description = "Distinct availability zones of the subnets, in the order of var.subnets."
  value       = distinct([for s in var.subnets : s.availability_zone])
}

output "route_table_id" {
  description = "ID of the route table all subnets use (give it to modules/tencentcloud/nat)."
  value       = tencentcloud_route_table.this.id
}
