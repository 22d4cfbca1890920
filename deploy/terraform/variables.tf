variable "subscription_id" {
  description = "Azure subscription of the environment."
  type        = string
}

variable "environment" {
  description = "dev, staging or prod."
  type        = string
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "tenant_id" {
  description = "Entra ID tenant (Key Vault, workload identity)."
  type        = string
}

variable "regions" {
  description = "Regions of the active-active pair, primary first. Each gets the same stack (module \"region\"); Cosmos DB and Front Door span them."
  type = map(object({
    location      = string
    short         = string
    address_space = string
    primary       = bool
    zones         = list(string)
  }))
}

variable "aks" {
  description = "AKS sizing for every region."
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

variable "event_hubs" {
  description = "Event Hubs namespace sizing (Premium: 90-day retention, up to 100 partitions per event hub)."
  type = object({
    sku      = string
    capacity = number
  })
}

variable "redis" {
  description = "Azure Cache for Redis sizing."
  type = object({
    sku_name = string
    family   = string
    capacity = number
  })
}

variable "cosmos_max_throughput" {
  description = "Autoscale ceiling (RU/s) per service database; Cosmos scales between 10 % of it and it."
  type        = map(number)
}

variable "log_retention_days" {
  description = "Log Analytics retention."
  type        = number
  default     = 90
}

variable "public_host" {
  description = "Public API host served by Front Door."
  type        = string
}

variable "aks_admin_group_object_ids" {
  description = "Entra ID groups with cluster-admin on AKS (no local accounts)."
  type        = list(string)
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
