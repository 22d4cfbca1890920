# One environment = two regions running the same stack (module "region", instantiated per
# entry of var.regions) behind one Front Door, sharing one multi-region-write Cosmos DB account
# and one Log Analytics workspace per region. Kafka topics and Cosmos containers come from
# catalog.tf, which deploy-check keeps equal to the code.

locals {
  prefix = "nivesh-${var.environment}"
  tags = merge(var.tags, {
    application = "nivesh"
    environment = var.environment
    managed_by  = "terraform"
  })
  primary_region = one([for k, r in var.regions : k if r.primary])
}

resource "azurerm_resource_group" "global" {
  name     = "${local.prefix}-global-rg"
  location = var.regions[local.primary_region].location
  tags     = local.tags
}

module "monitoring" {
  source              = "./modules/monitoring"
  name                = "${local.prefix}-logs"
  resource_group_name = azurerm_resource_group.global.name
  location            = azurerm_resource_group.global.location
  retention_days      = var.log_retention_days
  tags                = local.tags
}

module "cosmos" {
  source              = "./modules/cosmos"
  name                = "${local.prefix}-cosmos"
  resource_group_name = azurerm_resource_group.global.name
  locations = [for k, r in var.regions : {
    location = r.location
    primary  = r.primary
  }]
  databases                  = local.cosmos_databases
  max_throughput             = var.cosmos_max_throughput
  log_analytics_workspace_id = module.monitoring.workspace_id
  tags                       = local.tags
}

module "region" {
  source   = "./modules/region"
  for_each = var.regions

  prefix                     = "${local.prefix}-${each.value.short}"
  environment                = var.environment
  location                   = each.value.location
  zones                      = each.value.zones
  address_space              = each.value.address_space
  tenant_id                  = var.tenant_id
  aks                        = var.aks
  aks_admin_group_object_ids = var.aks_admin_group_object_ids
  event_hubs                 = var.event_hubs
  topics                     = local.topics
  redis                      = var.redis
  cosmos_account_id          = module.cosmos.account_id
  cosmos_account_name        = module.cosmos.account_name
  cosmos_resource_group_name = azurerm_resource_group.global.name
  services                   = keys(local.cosmos_databases)
  public_host                = var.public_host
  shared_secrets = {
    "kra-callback-secret"    = random_password.shared["kra-callback-secret"].result
    "payment-webhook-secret" = random_password.shared["payment-webhook-secret"].result
  }
  log_analytics_workspace_id = module.monitoring.workspace_id
  tags                       = local.tags
}

# HMAC secrets shared with an outside party, the same in every region (either region may receive
# the callback). Generated once and handed to the KRA / payment gateway when the callback URL is
# registered; when the party issues its own, set that in each regional vault instead (Terraform
# never reverts it: docs/runbooks/identity-and-secrets.md).
resource "random_password" "shared" {
  for_each = toset(["kra-callback-secret", "payment-webhook-secret"])
  length   = 48
  special  = false
}

module "onboarding_kek" {
  source                     = "./modules/onboarding-kek"
  name                       = substr(replace("${local.prefix}-kek", "staging", "stg"), 0, 24)
  resource_group_name        = azurerm_resource_group.global.name
  location                   = azurerm_resource_group.global.location
  tenant_id                  = var.tenant_id
  primary_region             = local.primary_region
  endpoint_subnet_ids        = { for k, m in module.region : k => m.endpoints_subnet_id }
  crypto_user_principal_ids  = { for k, m in module.region : k => m.service_identity_principal_ids["onboarding"] }
  log_analytics_workspace_id = module.monitoring.workspace_id
  tags                       = local.tags
}

module "frontdoor" {
  source              = "./modules/frontdoor"
  name                = "${local.prefix}-fd"
  resource_group_name = azurerm_resource_group.global.name
  public_host         = var.public_host
  # Both regions serve every request (active-active); Front Door's health probe on /readyz
  # through each region's Application Gateway takes a failing region out.
  origins = { for k, m in module.region : k => {
    host_name = m.app_gateway_public_fqdn
    priority  = 1
    weight    = 50
  } }
  log_analytics_workspace_id = module.monitoring.workspace_id
  tags                       = local.tags
}
