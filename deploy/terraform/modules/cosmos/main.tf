# One Cosmos DB for NoSQL account spanning both regions with multi-region writes (each region's
# services write locally), session consistency (read-your-writes per client, which is what a
# service needs after its own commit), and one database per service with an autoscale ceiling.
# Every container is partitioned on /partitionKey: a transactional batch (state + outbox +
# inbox marker) is limited to one logical partition, so the service chooses the key.

variable "name" {
  description = "Account name."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "locations" {
  description = "Regions, primary first (failover priority follows the order)."
  type = list(object({
    location = string
    primary  = bool
  }))
}

variable "databases" {
  description = "service => container => { key (what /partitionKey holds), default_ttl (seconds, -1 = per document) }."
  type        = map(map(object({ key = string, default_ttl = number })))
}

variable "max_throughput" {
  description = "Autoscale max RU/s per service database."
  type        = map(number)
}

variable "log_analytics_workspace_id" {
  description = "Diagnostics destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

locals {
  containers = merge([
    for db, containers in var.databases : {
      for name, c in containers : "${db}/${name}" => merge(c, { database = db, name = name })
    }
  ]...)
}

resource "azurerm_cosmosdb_account" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.locations[0].location
  offer_type          = "Standard"
  kind                = "GlobalDocumentDB"

  multiple_write_locations_enabled = true
  automatic_failover_enabled       = true
  public_network_access_enabled    = false
  # Services reach it through private endpoints in each region's VNet.
  is_virtual_network_filter_enabled = true
  minimal_tls_version               = "Tls12"
  # Keys stay enabled: the store adapter authenticates with the account key from Key Vault
  # (NIVESH__STORE__COSMOS__KEY); see deploy/.checkov.yaml.
  local_authentication_disabled      = false
  access_key_metadata_writes_enabled = false

  consistency_policy {
    consistency_level = "Session"
  }

  dynamic "geo_location" {
    for_each = var.locations
    content {
      location          = geo_location.value.location
      failover_priority = geo_location.key
      zone_redundant    = true
    }
  }

  backup {
    type = "Continuous"
    tier = "Continuous30Days"
  }

  tags = var.tags
}

resource "azurerm_cosmosdb_sql_database" "service" {
  for_each            = var.databases
  name                = "nivesh-${each.key}"
  resource_group_name = var.resource_group_name
  account_name        = azurerm_cosmosdb_account.this.name

  autoscale_settings {
    max_throughput = lookup(var.max_throughput, each.key, 1000)
  }
}

resource "azurerm_cosmosdb_sql_container" "this" {
  for_each              = local.containers
  name                  = each.value.name
  resource_group_name   = var.resource_group_name
  account_name          = azurerm_cosmosdb_account.this.name
  database_name         = azurerm_cosmosdb_sql_database.service[each.value.database].name
  partition_key_paths   = ["/partitionKey"]
  partition_key_version = 2
  default_ttl           = each.value.default_ttl

  indexing_policy {
    indexing_mode = "consistent"
    included_path {
      path = "/*"
    }
    # Document bodies are read by id or by partition; indexing them costs RU on every write.
    excluded_path {
      path = "/body/*"
    }
  }

  # Multi-region writes: concurrent writes to one document in two regions resolve by the
  # highest _ts; the services avoid it by owning each partition in one region at a time
  # (investor and scheme keys are routed to their home region by Front Door affinity).
  conflict_resolution_policy {
    mode                     = "LastWriterWins"
    conflict_resolution_path = "/_ts"
  }
}

resource "azurerm_monitor_diagnostic_setting" "cosmos" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_cosmosdb_account.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "DataPlaneRequests"
  }
  enabled_log {
    category = "PartitionKeyRUConsumption"
  }
  metric {
    category = "Requests"
  }
}

output "account_id" {
  description = "Account resource id."
  value       = azurerm_cosmosdb_account.this.id
}

output "account_name" {
  description = "Account name."
  value       = azurerm_cosmosdb_account.this.name
}

output "endpoint" {
  description = "Document endpoint."
  value       = azurerm_cosmosdb_account.this.endpoint
}
