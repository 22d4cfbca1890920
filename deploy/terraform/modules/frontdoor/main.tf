# Front Door Premium: the global entry. Routes every request to the healthy region nearest the
# client (active-active), with a WAF policy and HTTPS only. A region whose Application Gateway
# fails the health probe is taken out within about a minute (docs/runbooks/dr-drill.md).

variable "name" {
  description = "Profile name."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "public_host" {
  description = "Custom domain."
  type        = string
}

variable "origins" {
  description = "region => { host_name, priority, weight }."
  type        = map(object({ host_name = string, priority = number, weight = number }))
}

variable "log_analytics_workspace_id" {
  description = "Access and WAF log destination."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_cdn_frontdoor_profile" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  sku_name            = "Premium_AzureFrontDoor"
  tags                = var.tags
}

resource "azurerm_cdn_frontdoor_firewall_policy" "this" {
  name                = "${replace(var.name, "-", "")}waf"
  resource_group_name = var.resource_group_name
  sku_name            = azurerm_cdn_frontdoor_profile.this.sku_name
  mode                = "Prevention"
  enabled             = true
  tags                = var.tags

  managed_rule {
    type    = "Microsoft_DefaultRuleSet"
    version = "2.1"
    action  = "Block"
  }

  managed_rule {
    type    = "Microsoft_BotManagerRuleSet"
    version = "1.1"
    action  = "Block"
  }
}

resource "azurerm_cdn_frontdoor_endpoint" "this" {
  name                     = "${var.name}-api"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  tags                     = var.tags
}

resource "azurerm_cdn_frontdoor_origin_group" "this" {
  name                     = "regions"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  session_affinity_enabled = false

  load_balancing {
    sample_size                        = 4
    successful_samples_required        = 3
    additional_latency_in_milliseconds = 50
  }

  health_probe {
    protocol = "Https"
    # Answered by the Istio gateway itself (VirtualService nivesh-edge-health): a region is
    # healthy when its Application Gateway and Istio ingress answer.
    path                = "/edge/healthz"
    request_type        = "HEAD"
    interval_in_seconds = 30
  }
}

resource "azurerm_cdn_frontdoor_origin" "region" {
  for_each                       = var.origins
  name                           = each.key
  cdn_frontdoor_origin_group_id  = azurerm_cdn_frontdoor_origin_group.this.id
  enabled                        = true
  host_name                      = each.value.host_name
  origin_host_header             = var.public_host
  priority                       = each.value.priority
  weight                         = each.value.weight
  certificate_name_check_enabled = true
}

resource "azurerm_cdn_frontdoor_custom_domain" "api" {
  name                     = "api"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  host_name                = var.public_host

  tls {
    certificate_type = "ManagedCertificate"
  }
}

resource "azurerm_cdn_frontdoor_route" "api" {
  name                            = "api"
  cdn_frontdoor_endpoint_id       = azurerm_cdn_frontdoor_endpoint.this.id
  cdn_frontdoor_origin_group_id   = azurerm_cdn_frontdoor_origin_group.this.id
  cdn_frontdoor_origin_ids        = [for o in azurerm_cdn_frontdoor_origin.region : o.id]
  cdn_frontdoor_custom_domain_ids = [azurerm_cdn_frontdoor_custom_domain.api.id]
  supported_protocols             = ["Https"]
  https_redirect_enabled          = false
  patterns_to_match               = ["/v1/*"]
  forwarding_protocol             = "HttpsOnly"
  link_to_default_domain          = false
}

resource "azurerm_cdn_frontdoor_security_policy" "waf" {
  name                     = "waf"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id

  security_policies {
    firewall {
      cdn_frontdoor_firewall_policy_id = azurerm_cdn_frontdoor_firewall_policy.this.id
      association {
        domain {
          cdn_frontdoor_domain_id = azurerm_cdn_frontdoor_custom_domain.api.id
        }
        patterns_to_match = ["/*"]
      }
    }
  }
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_cdn_frontdoor_profile.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "FrontDoorAccessLog"
  }
  enabled_log {
    category = "FrontDoorWebApplicationFirewallLog"
  }
  enabled_log {
    category = "FrontDoorHealthProbeLog"
  }
}

output "endpoint_host" {
  description = "Endpoint host name."
  value       = azurerm_cdn_frontdoor_endpoint.this.host_name
}
