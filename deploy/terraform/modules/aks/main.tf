# AKS: a system pool for cluster add-ons only (CriticalAddonsOnly taint) and a user pool for the
# fleet, both autoscaling across three zones; Entra ID RBAC without local accounts; OIDC issuer
# and workload identity (pods get Entra tokens, no secrets); the Key Vault CSI driver with
# rotation; Azure CNI overlay with Cilium network policy (enforces the chart's NetworkPolicies).

variable "name" {
  description = "Cluster name."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "location" {
  description = "Region."
  type        = string
}

variable "zones" {
  description = "Availability zones for both pools."
  type        = list(string)
}

variable "subnet_id" {
  description = "Node subnet."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant."
  type        = string
}

variable "admin_group_object_ids" {
  description = "Entra ID groups with cluster-admin."
  type        = list(string)
}

variable "sizing" {
  description = "Kubernetes version and pool sizes."
  type = object({
    kubernetes_version = string
    system_vm_size     = string
    system_min_count   = number
    system_max_count   = number
    user_vm_size       = string
    user_min_count     = number
    user_max_count     = number
  })
}

variable "log_analytics_workspace_id" {
  description = "Container Insights destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_kubernetes_cluster" "this" {
  name                      = var.name
  resource_group_name       = var.resource_group_name
  location                  = var.location
  dns_prefix                = var.name
  kubernetes_version        = var.sizing.kubernetes_version
  sku_tier                  = "Standard"
  automatic_upgrade_channel = "patch"
  node_os_upgrade_channel   = "NodeImage"
  private_cluster_enabled   = true
  local_account_disabled    = true
  azure_policy_enabled      = true
  oidc_issuer_enabled       = true
  workload_identity_enabled = true

  default_node_pool {
    name                         = "system"
    vm_size                      = var.sizing.system_vm_size
    vnet_subnet_id               = var.subnet_id
    zones                        = var.zones
    auto_scaling_enabled         = true
    min_count                    = var.sizing.system_min_count
    max_count                    = var.sizing.system_max_count
    max_pods                     = 110
    os_disk_type                 = "Ephemeral"
    os_disk_size_gb              = 64
    host_encryption_enabled      = true
    only_critical_addons_enabled = true
    node_labels = {
      "nivesh.example/pool" = "system"
    }
    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  azure_active_directory_role_based_access_control {
    tenant_id              = var.tenant_id
    azure_rbac_enabled     = true
    admin_group_object_ids = var.admin_group_object_ids
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    outbound_type       = "userDefinedRouting"
    load_balancer_sku   = "standard"
  }

  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "2m"
  }

  oms_agent {
    log_analytics_workspace_id      = var.log_analytics_workspace_id
    msi_auth_for_monitoring_enabled = true
  }

  service_mesh_profile {
    mode                             = "Istio"
    revisions                        = ["asm-1-24"]
    internal_ingress_gateway_enabled = true
    external_ingress_gateway_enabled = false
  }

  workload_autoscaler_profile {
    keda_enabled = true
  }

  tags = var.tags
}

resource "azurerm_kubernetes_cluster_node_pool" "user" {
  name                    = "user"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.sizing.user_vm_size
  vnet_subnet_id          = var.subnet_id
  zones                   = var.zones
  mode                    = "User"
  auto_scaling_enabled    = true
  min_count               = var.sizing.user_min_count
  max_count               = var.sizing.user_max_count
  max_pods                = 110
  os_disk_type            = "Ephemeral"
  os_disk_size_gb         = 128
  host_encryption_enabled = true
  node_labels = {
    "nivesh.example/pool" = "user"
  }
  upgrade_settings {
    max_surge = "33%"
  }
  tags = var.tags
}

output "id" {
  description = "Cluster id."
  value       = azurerm_kubernetes_cluster.this.id
}

output "name" {
  description = "Cluster name."
  value       = azurerm_kubernetes_cluster.this.name
}

output "oidc_issuer_url" {
  description = "Issuer the workload identities federate with."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}
