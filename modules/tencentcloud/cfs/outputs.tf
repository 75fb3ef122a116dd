output "file_system_id" {
  description = "ID of the file system (cfs-xxxxxxxx)."
  value       = tencentcloud_cfs_file_system.this.id
}

output "mount_ip" {
  description = "IP address of the mount target inside the VPC."
  value       = tencentcloud_cfs_file_system.this.mount_ip
}

output "fs_id" {
  description = "Root directory ID of the file system (the NFSv3 export path is /<fs_id>)."
  value       = tencentcloud_cfs_file_system.this.fs_id
}

output "nfs_server" {
  description = "NFS server and export of the file system for NFSv4 mounts and Kubernetes nfs volumes: { server, path }."
  value = {
    server = tencentcloud_cfs_file_system.this.mount_ip
    path   = "/"
  }
}

output "access_group_id" {
  description = "ID of the access group holding the mount rules."
  value       = tencentcloud_cfs_access_group.this.id
}
