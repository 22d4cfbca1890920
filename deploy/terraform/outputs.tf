output "cosmos_endpoint" {
  description = "NIVESH__STORE__COSMOS__ENDPOINT for every service."
  value       = module.cosmos.endpoint
}

output "regions" {
  description = "Per region: what the Helm values of that region need."
  value = { for k, m in module.region : k => {
    aks_cluster_name         = m.aks_cluster_name
    kafka_bootstrap_servers  = m.kafka_bootstrap_servers
    key_vault_name           = m.key_vault_name
    service_identity_clients = m.service_identity_client_ids
    keda_identity_client_id  = m.keda_identity_client_id
  } }
}

output "frontdoor_endpoint" {
  description = "Front Door endpoint host to CNAME the public host to."
  value       = module.frontdoor.endpoint_host
}

output "onboarding_kek" {
  description = "Helm onboardingVault (vaultUrl, keyName): the onboarding PII vault's key-encryption key, one for every region."
  value = {
    vault_url = module.onboarding_kek.vault_url
    key_name  = module.onboarding_kek.key_name
  }
}
