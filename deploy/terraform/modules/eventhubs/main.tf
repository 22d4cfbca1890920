# Event Hubs with its Kafka endpoint: one namespace per region, one event hub per catalog topic
# with the catalog's partitions and retention. Premium because audit.events and the dead-letter
# topics keep 30 days (Standard stops at 7) and for dedicated processing units. Consumer groups
# need no resource: Kafka groups on Event Hubs exist once a client joins them.
# Trade-off against running Kafka (Strimzi on AKS, or Confluent Cloud): see
# docs/runbooks/kafka-outage.md ("Event Hubs or Kafka"). The Helm chart supports both
# (kafka.provider); on Kafka, the chart's topic job creates the same topics with
# replication factor 3 and min.insync.replicas 2.

variable "name" {
  description = "Namespace name."
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

variable "sku" {
  description = "Premium (required for 30-day retention)."
  type        = string
  validation {
    condition     = var.sku == "Premium"
    error_message = "Only Premium keeps 30 days, which audit.events and the dead-letter topics need."
  }
}

variable "capacity" {
  description = "Processing units."
  type        = number
}

variable "topics" {
  description = "name => { partitions, retention_ms } from catalog.tf."
  type        = map(object({ partitions = number, retention_ms = number }))
}

variable "subnet_id" {
  description = "Private endpoint subnet."
  type        = string
}

variable "log_analytics_workspace_id" {
  description = "Diagnostics destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_eventhub_namespace" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  sku                           = var.sku
  capacity                      = var.capacity
  public_network_access_enabled = false
  minimum_tls_version           = "1.2"
  # SASL PLAIN with a connection string is how librdkafka authenticates to the Kafka endpoint
  # (it has no Entra workload-identity flow); the string lives in Key Vault only.
  local_authentication_enabled = true
  tags                         = var.tags

  network_rulesets {
    default_action                 = "Deny"
    public_network_access_enabled  = false
    trusted_service_access_enabled = true
  }
}

resource "azurerm_eventhub" "topic" {
  for_each     = var.topics
  name         = each.key
  namespace_id = azurerm_eventhub_namespace.this.id
  # Event Hubs cannot reduce partitions and increasing them re-maps keys (breaking per-key
  # order), exactly like Kafka: change only with a migration plan.
  partition_count = each.value.partitions

  retention_description {
    cleanup_policy          = "Delete"
    retention_time_in_hours = ceil(each.value.retention_ms / 3600000)
  }
}

# The services' connection: send + listen, no manage (they cannot create or delete topics).
resource "azurerm_eventhub_namespace_authorization_rule" "services" {
  name                = "nivesh-services"
  namespace_name      = azurerm_eventhub_namespace.this.name
  resource_group_name = var.resource_group_name
  listen              = true
  send                = true
  manage              = false
}

resource "azurerm_private_endpoint" "this" {
  name                = "${var.name}-pe"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "${var.name}-psc"
    private_connection_resource_id = azurerm_eventhub_namespace.this.id
    subresource_names              = ["namespace"]
    is_manual_connection           = false
  }
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_eventhub_namespace.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "OperationalLogs"
  }
  enabled_log {
    category = "KafkaUserErrorLogs"
  }
  metric {
    category = "AllMetrics"
  }
}

output "bootstrap_servers" {
  description = "Kafka bootstrap (NIVESH__KAFKA__BOOTSTRAP_SERVERS)."
  value       = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net:9093"
}

output "connection_string" {
  description = "SASL password for the services (stored in Key Vault by the region module)."
  value       = azurerm_eventhub_namespace_authorization_rule.services.primary_connection_string
  sensitive   = true
}
