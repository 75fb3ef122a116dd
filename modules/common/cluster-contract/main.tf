# Turns a kubeconfig into the common cluster output contract (docs/provisioning.md). Pure expressions: no
# resources and no providers. Used by modules/local/cluster and modules/tencentcloud/tke; any new cloud whose
# API hands out a kubeconfig can use it too.

locals {
  doc = var.kubeconfig == null ? null : yamldecode(var.kubeconfig)

  # The given context, else the current context, else the first one (some generated kubeconfigs set none).
  context_name = var.context != null ? var.context : try(coalesce(lookup(local.doc, "current-context", ""), local.doc.contexts[0].name), null)
  context      = try(one([for c in local.doc.contexts : c.context if c.name == local.context_name]), null)
  cluster      = try(one([for c in local.doc.clusters : c.cluster if c.name == local.context.cluster]), null)
  user         = try(one([for u in local.doc.users : u.user if u.name == local.context.user]), null)

  # Resolves a file reference of the kubeconfig against base_dir.
  base = var.base_dir == null ? "" : "${trimsuffix(var.base_dir, "/")}/"

  api_endpoint       = try(local.cluster.server, null)
  ca_certificate     = try(base64decode(local.cluster["certificate-authority-data"]), file(startswith(local.cluster["certificate-authority"], "/") ? local.cluster["certificate-authority"] : "${local.base}${local.cluster["certificate-authority"]}"), null)
  token              = try(local.user.token, trimspace(file(startswith(local.user.tokenFile, "/") ? local.user.tokenFile : "${local.base}${local.user.tokenFile}")), null)
  client_certificate = try(base64decode(local.user["client-certificate-data"]), file(startswith(local.user["client-certificate"], "/") ? local.user["client-certificate"] : "${local.base}${local.user["client-certificate"]}"), null)
  client_key         = try(base64decode(local.user["client-key-data"]), file(startswith(local.user["client-key"], "/") ? local.user["client-key"] : "${local.base}${local.user["client-key"]}"), null)
  exec = try({
    api_version = local.user.exec.apiVersion
    command     = local.user.exec.command
    args        = try(tolist(local.user.exec.args), [])
    env         = try({ for e in local.user.exec.env : e.name => e.value }, {})
  }, null)

  credentials = {
    type = (local.user == null ? null :
      local.token != null ? "token" :
      local.client_certificate != null ? "client_certificate" :
      local.exec != null ? "exec" : "kubeconfig"
    )
    token              = local.token
    client_certificate = local.client_certificate
    client_key         = local.client_key
    exec               = local.exec
  }

  # Self-contained: one cluster, user and context named after the cluster, with file references inlined.
  kubeconfig = local.cluster == null || local.user == null ? null : yamlencode({
    apiVersion = "v1"
    kind       = "Config"
    clusters = [{
      name = var.cluster_name
      cluster = merge(
        { for k, v in local.cluster : k => v if k != "certificate-authority" },
        local.ca_certificate == null ? {} : { "certificate-authority-data" = base64encode(local.ca_certificate) },
      )
    }]
    users = [{
      name = var.cluster_name
      user = merge(
        { for k, v in local.user : k => v if !contains(["client-certificate", "client-key", "tokenFile"], k) },
        local.token == null ? {} : { token = local.token },
        local.client_certificate == null ? {} : { "client-certificate-data" = base64encode(local.client_certificate) },
        local.client_key == null ? {} : { "client-key-data" = base64encode(local.client_key) },
      )
    }]
    contexts = [{
      name = var.cluster_name
      context = merge(
        { cluster = var.cluster_name, user = var.cluster_name },
        try(local.context.namespace, null) == null ? {} : { namespace = local.context.namespace },
      )
    }]
    "current-context" = var.cluster_name
    preferences       = {}
  })
}
