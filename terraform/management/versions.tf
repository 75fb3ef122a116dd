terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    tencentcloud = {
      source  = "tencentcloudstack/tencentcloud"
      version = ">= 1.82.0, < 2.0.0"
    }
  }

  # Partial configuration: bucket, key (e.g. management/terraform.tfstate), region, endpoints,
  # use_path_style and use_lockfile are given with `terraform init -backend-config=...`
  # (docs/provisioning.md, "Bootstrapping the management stack").
  backend "s3" {}
}
