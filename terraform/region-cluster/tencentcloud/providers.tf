# Credentials come only from the environment of the terraform process: TENCENTCLOUD_SECRET_ID,
# TENCENTCLOUD_SECRET_KEY and, for temporary credentials, TENCENTCLOUD_SECURITY_TOKEN (or the
# TENCENTCLOUD_ASSUME_ROLE_* variables). They are never variables of this stack.
provider "tencentcloud" {
  region = var.region
}
