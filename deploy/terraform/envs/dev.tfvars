# dev: both regions exist (the same module twice) but at minimum size, so DR drills can run in dev.
environment     = "dev"
subscription_id = "00000000-0000-0000-0000-000000000000"
tenant_id       = "00000000-0000-0000-0000-000000000000"
public_host     = "api.dev.nivesh.example"

regions = {
  centralindia = { location = "centralindia", short = "cin", address_space = "10.10.0.0/16", primary = true, zones = ["1", "2", "3"] }
  southindia   = { location = "southindia", short = "sin", address_space = "10.11.0.0/16", primary = false, zones = ["1", "2", "3"] }
}

aks = {
  kubernetes_version = "1.31"
  system_vm_size     = "Standard_D2ds_v5"
  system_min_count   = 1
  system_max_count   = 3
  user_vm_size       = "Standard_D4ds_v5"
  user_min_count     = 1
  user_max_count     = 4
}

event_hubs = { sku = "Premium", capacity = 1 }
redis      = { sku_name = "Standard", family = "C", capacity = 1 }

cosmos_max_throughput = {
  "nav-ingestor"   = 1000
  "nav-calculator" = 1000
  "nav-publisher"  = 1000
  "order"          = 1000
  "payment"        = 1000
  "portfolio"      = 1000
  "notification"   = 1000
  "genai-gateway"  = 1000
}

log_retention_days         = 30
aks_admin_group_object_ids = ["00000000-0000-0000-0000-000000000000"]
tags                       = { cost_center = "nivesh-dev" }
