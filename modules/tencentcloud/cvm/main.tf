# CVM instances in a private subnet with a security group of their own (e.g. the management node's control
# plane host, or helper machines in a user region).

data "tencentcloud_images" "this" {
  count = var.image_id == null ? 1 : 0

  image_type       = ["PUBLIC_IMAGE"]
  image_name_regex = var.image_name_regex
}

locals {
  image_id = var.image_id != null ? var.image_id : data.tencentcloud_images.this[0].images[0].image_id
}

resource "tencentcloud_security_group" "this" {
  name        = "${var.name}-cvm"
  description = "Instances ${var.name}-*"
  tags        = var.tags
}

resource "tencentcloud_security_group_rule_set" "this" {
  security_group_id = tencentcloud_security_group.this.id

  dynamic "ingress" {
    for_each = var.ingress_rules
    content {
      action      = "ACCEPT"
      protocol    = ingress.value.protocol
      port        = ingress.value.port
      cidr_block  = ingress.value.cidr_block
      description = ingress.value.description
    }
  }

  ingress {
    action      = "DROP"
    protocol    = "ALL"
    port        = "ALL"
    cidr_block  = "0.0.0.0/0"
    description = "drop everything else"
  }

  egress {
    action      = "ACCEPT"
    protocol    = "ALL"
    port        = "ALL"
    cidr_block  = "0.0.0.0/0"
    description = "all egress"
  }
}

resource "tencentcloud_instance" "this" {
  count = var.instance_count

  instance_name     = "${var.name}-${count.index}"
  hostname          = "${var.name}-${count.index}"
  availability_zone = var.availability_zone
  instance_type     = var.instance_type
  image_id          = local.image_id
  vpc_id            = var.vpc_id
  subnet_id         = var.subnet_id

  orderly_security_groups = [tencentcloud_security_group.this.id]

  instance_charge_type = var.spot ? "SPOTPAID" : "POSTPAID_BY_HOUR"
  spot_instance_type   = var.spot ? "ONE-TIME" : null
  spot_max_price       = var.spot ? var.spot_max_price : null

  system_disk_type = var.system_disk_type
  system_disk_size = var.system_disk_size

  dynamic "data_disks" {
    for_each = var.data_disk_size > 0 ? [var.data_disk_size] : []
    content {
      data_disk_type       = "CLOUD_PREMIUM"
      data_disk_size       = data_disks.value
      delete_with_instance = true
    }
  }

  allocate_public_ip         = var.public_ip
  internet_charge_type       = var.public_ip ? "TRAFFIC_POSTPAID_BY_HOUR" : null
  internet_max_bandwidth_out = var.public_ip ? var.internet_max_bandwidth_out : null

  key_ids       = length(var.key_ids) > 0 ? var.key_ids : null
  user_data_raw = var.user_data

  tags = var.tags

  lifecycle {
    # A newer public image must not replace running instances.
    ignore_changes = [image_id]
  }
}
