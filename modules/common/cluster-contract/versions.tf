terraform {
  # Cross-variable validation needs 1.9; nonsensitive() of a value that is not sensitive needs 1.7.
  required_version = ">= 1.9.0, < 2.0.0"
}
