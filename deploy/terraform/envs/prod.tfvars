# prod: active-active in Central India and South India (the same module twice).
environment     = "prod"
subscription_id = "00000000-0000-0000-0000-000000000000"
tenant_id       = "00000000-0000-0000-0000-000000000000"
public_host     = "api.nivesh.example"

regions = {
  centralindia = { location = "centralindia", short = "cin", address_space = "10.30.0.0/16", primary = true, zones = ["1", "2", "3"] }
  southindia   = { location = "southindia", short = "sin", address_space = "10.31.0.0/16", primary = false, zones = ["1", "2", "3"] }
}

aks = {
  kubernetes_version = "1.31"
  system_vm_size     = "Standard_D4ds_v5"
  system_min_count   = 3
  system_max_count   = 6
  user_vm_size       = "Standard_D8ds_v5"
  user_min_count     = 6
  user_max_count     = 30
}

# 4 PUs per region: the SIP-date peak (~5k orders/s fanning out to payment, transaction and
# notification topics) with headroom for one region carrying both regions' traffic.
event_hubs = { sku = "Premium", capacity = 4 }
redis      = { sku_name = "Premium", family = "P", capacity = 2 }

# RU/s ceilings: order and payment take the SIP peak, the NAV services the 9 pm burst.
cosmos_max_throughput = {
  "nav-ingestor"   = 10000
  "nav-calculator" = 20000
  "nav-publisher"  = 20000
  "order"          = 40000
  "payment"        = 20000
  "portfolio"      = 20000
  "notification"   = 10000
  "genai-gateway"  = 4000
}

log_retention_days         = 365
aks_admin_group_object_ids = ["00000000-0000-0000-0000-000000000000"]
tags                       = { cost_center = "nivesh-prod" }
