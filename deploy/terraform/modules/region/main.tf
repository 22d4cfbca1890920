# One region of the active-active pair: network, AKS, Event Hubs, Redis, Key Vault, the
# Application Gateway in front of Istio, and one workload identity per service (federated with
# its Kubernetes service account, allowed to read Key Vault secrets and its own Cosmos DB
# database only). The environment instantiates this module once per region.

variable "prefix" {
  description = "Name prefix, e.g. nivesh-prod-cin."
  type        = string
}

variable "environment" {
  description = "dev, staging or prod."
  type        = string
}

variable "location" {
  description = "Region."
  type        = string
}

variable "zones" {
  description = "Availability zones."
  type        = list(string)
}

variable "address_space" {
  description = "VNet /16."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant."
  type        = string
}

variable "aks" {
  description = "AKS sizing."
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

variable "aks_admin_group_object_ids" {
  description = "Cluster admins."
  type        = list(string)
}

variable "event_hubs" {
  description = "Event Hubs sizing."
  type        = object({ sku = string, capacity = number })
}

variable "topics" {
  description = "Catalog topics."
  type        = map(object({ partitions = number, retention_ms = number }))
}

variable "redis" {
  description = "Redis sizing."
  type        = object({ sku_name = string, family = string, capacity = number })
}

variable "cosmos_account_id" {
  description = "Shared Cosmos DB account id."
  type        = string
}

variable "cosmos_account_name" {
  description = "Shared Cosmos DB account name."
  type        = string
}

variable "cosmos_resource_group_name" {
  description = "Resource group of the Cosmos DB account."
  type        = string
}

variable "services" {
  description = "Service names (one identity and Cosmos database each)."
  type        = list(string)
}

variable "public_host" {
  description = "Public API host (the Application Gateway listener's host name)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace the chart is installed in."
  type        = string
  default     = "nivesh"
}

variable "istio_ingress_ip" {
  description = "Private IP of the Istio internal ingress gateway; empty picks a fixed address in the node subnet, which the gateway Service pins with its load-balancer-ipv4 annotation."
  type        = string
  default     = ""
}

variable "shared_secrets" {
  description = "Secrets both regions must hold with the same value (HMAC secrets of the KRA's callbacks and the payment gateway's webhooks, which may reach either region): Key Vault object name => first value."
  type        = map(string)
  sensitive   = true
}

variable "secret_expiration_date" {
  description = "Expiry of Key Vault secrets written by Terraform (the rotation pipeline moves it)."
  type        = string
  default     = "2027-12-31T00:00:00Z"
}

variable "log_analytics_workspace_id" {
  description = "Diagnostics destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_resource_group" "this" {
  name     = "${var.prefix}-rg"
  location = var.location
  tags     = var.tags
}

module "network" {
  source              = "../network"
  name                = var.prefix
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  address_space       = var.address_space
  tags                = var.tags
}

module "aks" {
  source                     = "../aks"
  name                       = "${var.prefix}-aks"
  resource_group_name        = azurerm_resource_group.this.name
  location                   = var.location
  zones                      = var.zones
  subnet_id                  = module.network.aks_subnet_id
  tenant_id                  = var.tenant_id
  admin_group_object_ids     = var.aks_admin_group_object_ids
  sizing                     = var.aks
  log_analytics_workspace_id = var.log_analytics_workspace_id
  tags                       = var.tags
}

module "eventhubs" {
  source                     = "../eventhubs"
  name                       = "${var.prefix}-ehns"
  resource_group_name        = azurerm_resource_group.this.name
  location                   = var.location
  sku                        = var.event_hubs.sku
  capacity                   = var.event_hubs.capacity
  topics                     = var.topics
  subnet_id                  = module.network.endpoints_subnet_id
  log_analytics_workspace_id = var.log_analytics_workspace_id
  tags                       = var.tags
}

module "redis" {
  source              = "../redis"
  name                = "${var.prefix}-redis"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  zones               = var.zones
  sizing              = var.redis
  subnet_id           = module.network.endpoints_subnet_id
  tags                = var.tags
}

data "azurerm_cosmosdb_account" "shared" {
  name                = var.cosmos_account_name
  resource_group_name = var.cosmos_resource_group_name
}

module "keyvault" {
  source                     = "../keyvault"
  name                       = substr(replace("${var.prefix}-kv", "staging", "stg"), 0, 24)
  resource_group_name        = azurerm_resource_group.this.name
  location                   = var.location
  tenant_id                  = var.tenant_id
  subnet_id                  = module.network.endpoints_subnet_id
  secret_expiration_date     = var.secret_expiration_date
  log_analytics_workspace_id = var.log_analytics_workspace_id
  tags                       = var.tags
  # The object names the Helm chart's SecretProviderClasses and KEDA mount (keyVault.common).
  secrets = {
    "kafka-connection-string" = module.eventhubs.connection_string
    "kafka-sasl-username"     = "$ConnectionString"
    "redis-url"               = module.redis.url
    "cosmos-key"              = data.azurerm_cosmosdb_account.shared.primary_key
  }
  # Per-service objects of the chart (services.<name>.secrets): kra-callback-secret,
  # payment-webhook-secret.
  seeded_secrets = var.shared_secrets
}

# --- identities ---------------------------------------------------------------------------------

resource "azurerm_user_assigned_identity" "service" {
  for_each            = toset(var.services)
  name                = "${var.prefix}-${each.key}-id"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "service" {
  for_each            = toset(var.services)
  name                = "aks-${each.key}"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.service[each.key].id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = module.aks.oidc_issuer_url
  subject             = "system:serviceaccount:${var.namespace}:nivesh-${each.key}"
}

resource "azurerm_role_assignment" "service_secrets" {
  for_each             = toset(var.services)
  scope                = module.keyvault.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.service[each.key].principal_id
}

# Cosmos DB data-plane role (Built-in Data Contributor) on the service's own database only, for
# when the store adapter moves from the account key to Entra tokens.
resource "azurerm_cosmosdb_sql_role_assignment" "service" {
  for_each            = toset(var.services)
  resource_group_name = var.cosmos_resource_group_name
  account_name        = var.cosmos_account_name
  role_definition_id  = "${var.cosmos_account_id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002"
  principal_id        = azurerm_user_assigned_identity.service[each.key].principal_id
  scope               = "${var.cosmos_account_id}/dbs/nivesh-${each.key}"
}

# KEDA (AKS add-on, kube-system/keda-operator) reads the Kafka credentials for the lag scaler.
resource "azurerm_user_assigned_identity" "keda" {
  name                = "${var.prefix}-keda-id"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "keda" {
  name                = "aks-keda-operator"
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.keda.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = module.aks.oidc_issuer_url
  subject             = "system:serviceaccount:kube-system:keda-operator"
}

resource "azurerm_role_assignment" "keda_secrets" {
  scope                = module.keyvault.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.keda.principal_id
}

# --- edge ---------------------------------------------------------------------------------------

resource "azurerm_user_assigned_identity" "appgw" {
  name                = "${var.prefix}-appgw-id"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "appgw_certificate" {
  scope                = module.keyvault.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.appgw.principal_id
}

module "appgateway" {
  source                = "../appgateway"
  name                  = "${var.prefix}-appgw"
  resource_group_name   = azurerm_resource_group.this.name
  location              = var.location
  zones                 = var.zones
  subnet_id             = module.network.appgw_subnet_id
  backend_ip            = var.istio_ingress_ip != "" ? var.istio_ingress_ip : cidrhost(cidrsubnet(var.address_space, 4, 2), 4000)
  public_host           = var.public_host
  certificate_secret_id = "${module.keyvault.uri}secrets/api-tls"
  identity_id           = azurerm_user_assigned_identity.appgw.id
  tags                  = var.tags
}

output "aks_cluster_name" {
  description = "AKS cluster."
  value       = module.aks.name
}

output "kafka_bootstrap_servers" {
  description = "Helm kafka.bootstrapServers."
  value       = module.eventhubs.bootstrap_servers
}

output "key_vault_name" {
  description = "Helm keyVault.name."
  value       = module.keyvault.name
}

output "service_identity_client_ids" {
  description = "Helm workloadIdentity.clientIds."
  value       = { for k, v in azurerm_user_assigned_identity.service : k => v.client_id }
}

output "service_identity_principal_ids" {
  description = "Object ids of the service identities (role assignments outside this module, e.g. the onboarding KEK)."
  value       = { for k, v in azurerm_user_assigned_identity.service : k => v.principal_id }
}

output "endpoints_subnet_id" {
  description = "Private endpoint subnet (shared resources add their endpoints here)."
  value       = module.network.endpoints_subnet_id
}

output "keda_identity_client_id" {
  description = "Helm keda.identityClientId."
  value       = azurerm_user_assigned_identity.keda.client_id
}

output "app_gateway_public_fqdn" {
  description = "Front Door origin."
  value       = module.appgateway.public_fqdn
}
