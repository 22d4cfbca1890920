# Key Vault per region: RBAC authorization (no access policies), purge protection, private
# endpoint only. Holds the secrets the chart's SecretProviderClasses mount; nothing secret is in
# Helm values or tfvars (Terraform writes them from the resources it created).

variable "name" {
  description = "Vault name (3-24 chars)."
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

variable "tenant_id" {
  description = "Entra ID tenant."
  type        = string
}

variable "subnet_id" {
  description = "Private endpoint subnet."
  type        = string
}

variable "secrets" {
  description = "Secret name => value, written by Terraform from the resources it manages."
  type        = map(string)
  sensitive   = true
}

variable "seeded_secrets" {
  description = "Secret name => first value, for secrets another party owns (a KRA's or payment gateway's HMAC secret): Terraform creates them once and never reverts a value set later in Key Vault."
  type        = map(string)
  sensitive   = true
  default     = {}
}

variable "secret_expiration_date" {
  description = "Expiry of the secrets written here (RFC 3339); the rotation pipeline moves it forward."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Audit log destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_key_vault" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  tenant_id                     = var.tenant_id
  sku_name                      = "premium"
  enable_rbac_authorization     = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = false
  tags                          = var.tags

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }
}

resource "azurerm_key_vault_secret" "this" {
  for_each        = nonsensitive(toset(keys(var.secrets)))
  name            = each.key
  value           = var.secrets[each.key]
  key_vault_id    = azurerm_key_vault.this.id
  content_type    = "text/plain"
  expiration_date = var.secret_expiration_date
}

# Seeded, then owned by Key Vault: rotating or replacing the value there (az keyvault secret set,
# docs/runbooks/identity-and-secrets.md) must not be undone by the next apply.
resource "azurerm_key_vault_secret" "seeded" {
  for_each        = nonsensitive(toset(keys(var.seeded_secrets)))
  name            = each.key
  value           = var.seeded_secrets[each.key]
  key_vault_id    = azurerm_key_vault.this.id
  content_type    = "text/plain"
  expiration_date = var.secret_expiration_date

  lifecycle {
    ignore_changes = [value]
  }
}

resource "azurerm_private_endpoint" "this" {
  name                = "${var.name}-pe"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "${var.name}-psc"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "AuditEvent"
  }
}

output "id" {
  description = "Vault id."
  value       = azurerm_key_vault.this.id
}

output "name" {
  description = "Vault name."
  value       = azurerm_key_vault.this.name
}

output "uri" {
  description = "Vault URI (https://<name>.vault.azure.net/)."
  value       = azurerm_key_vault.this.vault_uri
}
