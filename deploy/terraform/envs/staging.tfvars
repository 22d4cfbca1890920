environment     = "staging"
subscription_id = "00000000-0000-0000-0000-000000000000"
tenant_id       = "00000000-0000-0000-0000-000000000000"
public_host     = "api.staging.nivesh.example"

regions = {
  centralindia = { location = "centralindia", short = "cin", address_space = "10.20.0.0/16", primary = true, zones = ["1", "2", "3"] }
  southindia   = { location = "southindia", short = "sin", address_space = "10.21.0.0/16", primary = false, zones = ["1", "2", "3"] }
}

aks = {
  kubernetes_version = "1.31"
  system_vm_size     = "Standard_D4ds_v5"
  system_min_count   = 2
  system_max_count   = 3
  user_vm_size       = "Standard_D8ds_v5"
  user_min_count     = 3
  user_max_count     = 9
}

event_hubs = { sku = "Premium", capacity = 1 }
redis      = { sku_name = "Premium", family = "P", capacity = 1 }

cosmos_max_throughput = {
  "nav-ingestor"   = 4000
  "nav-calculator" = 4000
  "nav-publisher"  = 4000
  "order"          = 4000
  "payment"        = 4000
  "portfolio"      = 4000
  "notification"   = 1000
  "genai-gateway"  = 1000
}

log_retention_days         = 60
aks_admin_group_object_ids = ["00000000-0000-0000-0000-000000000000"]
tags                       = { cost_center = "nivesh-staging" }
