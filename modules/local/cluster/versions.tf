terraform {
  # Cross-variable validation needs 1.9; `terraform_data` needs 1.4.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    # Built into Terraform itself: nothing is downloaded, so this module works offline.
    terraform = {
      source = "terraform.io/builtin/terraform"
    }
  }
}
