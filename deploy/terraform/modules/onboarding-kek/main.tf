# The onboarding service's key-encryption key (KEK): an HSM-backed RSA key that wraps every
# investor's PII data key (services/onboarding/src/vault.rs calls wrapKey/unwrapKey with
# RSA-OAEP-256). One vault for the whole environment, reachable from every region through its own
# private endpoint: vault entries live in the multi-region Cosmos DB account, so an entry wrapped
# in one region must unwrap in the other, and the service only unwraps keys of its configured
# vault. Destroying this key crypto-shreds every investor at once, hence prevent_destroy.

variable "name" {
  description = "Vault name (3-24 chars)."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group (the environment's global one)."
  type        = string
}

variable "location" {
  description = "Region of the vault (the primary region)."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant."
  type        = string
}

variable "endpoint_subnet_ids" {
  description = "Region => private endpoint subnet; the vault gets an endpoint in each."
  type        = map(string)
}

variable "primary_region" {
  description = "Key of endpoint_subnet_ids whose subnet holds the vault's first endpoint."
  type        = string
}

variable "key_name" {
  description = "Key name (Helm onboardingVault.keyName)."
  type        = string
  default     = "onboarding-kek"
}

variable "key_expiration_date" {
  description = "Expiry of the first key version (RFC 3339); the rotation policy creates the next version before it. Expired versions still unwrap."
  type        = string
  default     = "2027-12-31T00:00:00Z"
}

variable "crypto_user_principal_ids" {
  description = "Region => object id of the onboarding identity there: Key Vault Crypto User on this key only."
  type        = map(string)
}

variable "log_analytics_workspace_id" {
  description = "Audit log destination (every wrap and unwrap is an AuditEvent)."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

module "vault" {
  source                     = "../keyvault"
  name                       = var.name
  resource_group_name        = var.resource_group_name
  location                   = var.location
  tenant_id                  = var.tenant_id
  subnet_id                  = var.endpoint_subnet_ids[var.primary_region]
  secrets                    = {}
  secret_expiration_date     = var.key_expiration_date
  log_analytics_workspace_id = var.log_analytics_workspace_id
  tags                       = var.tags
}

# The other regions reach the same vault through an endpoint in their own VNet.
resource "azurerm_private_endpoint" "region" {
  for_each            = { for k, v in var.endpoint_subnet_ids : k => v if k != var.primary_region }
  name                = "${var.name}-pe-${each.key}"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = each.value
  tags                = var.tags

  private_service_connection {
    name                           = "${var.name}-psc-${each.key}"
    private_connection_resource_id = module.vault.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
}

resource "azurerm_key_vault_key" "kek" {
  name            = var.key_name
  key_vault_id    = module.vault.id
  key_type        = "RSA-HSM"
  key_size        = 3072
  key_opts        = ["wrapKey", "unwrapKey"]
  expiration_date = var.key_expiration_date

  # A new version every year; wrapping uses the current version, unwrapping the version recorded
  # in each wrapped key's kid, so old entries keep opening after a rotation.
  rotation_policy {
    automatic {
      time_before_expiry = "P30D"
    }
    expire_after         = "P13M"
    notify_before_expiry = "P45D"
  }

  lifecycle {
    prevent_destroy = true
    # Rotation moves the expiry of the current version; Terraform must not fight it.
    ignore_changes = [expiration_date]
  }
}

# Scoped to the key, not the vault: the onboarding identity can wrap and unwrap with this key and
# nothing else in it.
resource "azurerm_role_assignment" "crypto_user" {
  for_each             = var.crypto_user_principal_ids
  scope                = azurerm_key_vault_key.kek.resource_versionless_id
  role_definition_name = "Key Vault Crypto User"
  principal_id         = each.value
}

output "vault_url" {
  description = "Helm onboardingVault.vaultUrl."
  value       = trimsuffix(module.vault.uri, "/")
}

output "key_name" {
  description = "Helm onboardingVault.keyName."
  value       = azurerm_key_vault_key.kek.name
}

output "key_id" {
  description = "Versionless key id (what the role assignments are scoped to)."
  value       = azurerm_key_vault_key.kek.resource_versionless_id
}
