terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    # Built into Terraform: this stack needs no provider download and works offline.
    terraform = {
      source = "terraform.io/builtin/terraform"
    }
  }

  # Partial configuration: the control plane passes bucket, key (one per cluster), region, endpoints,
  # use_path_style and use_lockfile with `terraform init -backend-config=...` (docs/provisioning.md).
  backend "s3" {}
}
