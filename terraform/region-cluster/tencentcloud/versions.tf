terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    tencentcloud = {
      source  = "tencentcloudstack/tencentcloud"
      version = ">= 1.82.0, < 2.0.0"
    }
  }

  # Partial configuration: the control plane passes bucket, key (one per cluster), region, endpoints,
  # use_path_style and use_lockfile with `terraform init -backend-config=...` (docs/provisioning.md).
  backend "s3" {}
}
