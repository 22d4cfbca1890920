# Application Gateway (WAF v2) per region: the only public entry of a region, reached by Front
# Door; terminates TLS with a Key Vault certificate and forwards to the AKS-managed Istio
# internal ingress gateway, which applies the chart's VirtualService and JWT policies.

variable "name" {
  description = "Gateway name."
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
  description = "Zones."
  type        = list(string)
}

variable "subnet_id" {
  description = "Dedicated subnet."
  type        = string
}

variable "backend_ip" {
  description = "Private IP of the Istio internal ingress gateway."
  type        = string
}

variable "public_host" {
  description = "Host name requests carry."
  type        = string
}

variable "certificate_secret_id" {
  description = "Key Vault secret id of the TLS certificate."
  type        = string
}

variable "identity_id" {
  description = "User-assigned identity that may read the certificate."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_public_ip" "this" {
  name                = "${var.name}-pip"
  resource_group_name = var.resource_group_name
  location            = var.location
  allocation_method   = "Static"
  sku                 = "Standard"
  zones               = var.zones
  domain_name_label   = var.name
  tags                = var.tags
}

resource "azurerm_web_application_firewall_policy" "this" {
  name                = "${replace(var.name, "-", "")}waf"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  policy_settings {
    enabled                     = true
    mode                        = "Prevention"
    request_body_check          = true
    max_request_body_size_in_kb = 2000
    # NAV files are uploaded as bodies of up to tens of MB (the service streams them).
    file_upload_limit_in_mb = 100
  }

  managed_rules {
    managed_rule_set {
      type    = "OWASP"
      version = "3.2"
    }
    managed_rule_set {
      type    = "Microsoft_BotManagerRuleSet"
      version = "1.0"
    }
  }
}

resource "azurerm_application_gateway" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  zones               = var.zones
  firewall_policy_id  = azurerm_web_application_firewall_policy.this.id
  enable_http2        = true
  tags                = var.tags

  sku {
    name = "WAF_v2"
    tier = "WAF_v2"
  }

  autoscale_configuration {
    min_capacity = 2
    max_capacity = 10
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity_id]
  }

  ssl_policy {
    policy_type = "Predefined"
    policy_name = "AppGwSslPolicy20220101S"
  }

  gateway_ip_configuration {
    name      = "gateway"
    subnet_id = var.subnet_id
  }

  frontend_ip_configuration {
    name                 = "public"
    public_ip_address_id = azurerm_public_ip.this.id
  }

  frontend_port {
    name = "https"
    port = 443
  }

  ssl_certificate {
    name                = "api"
    key_vault_secret_id = var.certificate_secret_id
  }

  http_listener {
    name                           = "https"
    frontend_ip_configuration_name = "public"
    frontend_port_name             = "https"
    protocol                       = "Https"
    ssl_certificate_name           = "api"
    host_name                      = var.public_host
  }

  backend_address_pool {
    name         = "istio-ingress"
    ip_addresses = [var.backend_ip]
  }

  probe {
    name                                      = "istio-ready"
    protocol                                  = "Http"
    path                                      = "/healthz/ready"
    port                                      = 15021
    interval                                  = 10
    timeout                                   = 5
    unhealthy_threshold                       = 3
    pick_host_name_from_backend_http_settings = true
  }

  backend_http_settings {
    name                  = "istio"
    protocol              = "Http"
    port                  = 80
    cookie_based_affinity = "Disabled"
    request_timeout       = 60
    host_name             = var.public_host
    probe_name            = "istio-ready"
  }

  request_routing_rule {
    name                       = "api"
    rule_type                  = "Basic"
    priority                   = 100
    http_listener_name         = "https"
    backend_address_pool_name  = "istio-ingress"
    backend_http_settings_name = "istio"
  }
}

output "public_fqdn" {
  description = "Origin host for Front Door."
  value       = azurerm_public_ip.this.fqdn
}
