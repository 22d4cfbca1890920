# Log Analytics: AKS Container Insights, diagnostics of every data service, and Front Door/WAF
# logs land here; Prometheus metrics go to the in-cluster Prometheus (ServiceMonitor).

variable "name" {
  description = "Workspace name."
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

variable "retention_days" {
  description = "Retention of logs in days."
  type        = number
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.retention_days
  # Queries only with Entra ID identities, never workspace keys.
  local_authentication_enabled = false
  tags                         = var.tags
}

output "workspace_id" {
  description = "Workspace resource id."
  value       = azurerm_log_analytics_workspace.this.id
}
