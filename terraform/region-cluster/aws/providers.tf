# Credentials come only from the environment of the terraform process: AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY and, for temporary credentials, AWS_SESSION_TOKEN (or AWS_PROFILE with a shared
# config file the control plane writes for the run). They are never variables of this stack.
provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
