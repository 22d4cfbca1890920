# Azure Cache for Redis (Premium: zone redundancy, VNet-private, persistence off because every
# cache entry can be rebuilt from the store). TLS only on 6380. The services treat Redis as
# lossy (docs/runbooks/redis-outage.md). Redis Enterprise (azurerm_redis_enterprise_cluster)
# is the option when active geo-replication between the two regions is wanted; not needed
# today because caches are per region and refilled from Cosmos DB.

variable "name" {
  description = "Cache name."
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
  description = "Zones for replicas."
  type        = list(string)
}

variable "sizing" {
  description = "sku_name, family, capacity."
  type = object({
    sku_name = string
    family   = string
    capacity = number
  })
}

variable "subnet_id" {
  description = "Private endpoint subnet."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_redis_cache" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  sku_name                      = var.sizing.sku_name
  family                        = var.sizing.family
  capacity                      = var.sizing.capacity
  zones                         = var.sizing.sku_name == "Premium" ? var.zones : null
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  redis_version                 = "6"
  tags                          = var.tags

  redis_configuration {
    maxmemory_policy = "allkeys-lru"
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
    private_connection_resource_id = azurerm_redis_cache.this.id
    subresource_names              = ["redisCache"]
    is_manual_connection           = false
  }
}

output "url" {
  description = "rediss:// URL with the access key (NIVESH__REDIS__URL, stored in Key Vault)."
  value       = "rediss://:${azurerm_redis_cache.this.primary_access_key}@${azurerm_redis_cache.this.hostname}:${azurerm_redis_cache.this.ssl_port}"
  sensitive   = true
}
