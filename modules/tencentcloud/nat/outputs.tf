output "nat_gateway_id" {
  description = "ID of the NAT gateway (nat-xxxxxxxx)."
  value       = tencentcloud_nat_gateway.this.id
}

output "eip_ids" {
  description = "IDs of the elastic IPs bound to the gateway."
  value       = tencentcloud_eip.this[*].id
}

output "public_ips" {
  description = "Egress IP addresses of the subnets behind the gateway (e.g. to allow-list them on the control plane)."
  value       = tencentcloud_eip.this[*].public_ip
}

output "route_entry_ids" {
  description = "IDs of the route table entries that send traffic through the gateway."
  value       = tencentcloud_route_table_entry.this[*].id
}
