output "instance_ids" {
  description = "IDs of the instances (ins-xxxxxxxx), in index order."
  value       = tencentcloud_instance.this[*].id
}

output "private_ips" {
  description = "Private IP addresses of the instances, in index order."
  value       = tencentcloud_instance.this[*].private_ip
}

output "public_ips" {
  description = "Public IP addresses of the instances (empty strings without public_ip)."
  value       = tencentcloud_instance.this[*].public_ip
}

output "security_group_id" {
  description = "ID of the instances' security group."
  value       = tencentcloud_security_group.this.id
}

output "image_id" {
  description = "Image the instances were created from."
  value       = local.image_id
}
