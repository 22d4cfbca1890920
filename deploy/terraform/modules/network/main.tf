# One VNet per region: AKS nodes, private endpoints (Cosmos DB, Event Hubs, Redis, Key Vault),
# the Application Gateway, and the Azure Firewall subnet egress is routed through (the Helm
# NetworkPolicies allow exactly these ranges).

variable "name" {
  description = "Name prefix."
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

variable "address_space" {
  description = "VNet range, a /16; subnets are carved from it."
  type        = string
}

variable "tags" {
  description = "Tags."
  type        = map(string)
}

resource "azurerm_virtual_network" "this" {
  name                = "${var.name}-vnet"
  resource_group_name = var.resource_group_name
  location            = var.location
  address_space       = [var.address_space]
  tags                = var.tags
}

# Layout of the /16: firewall /26 at .0.0, app gateway /24 at .1.0, private endpoints /22 at
# .16.0, AKS nodes /20 at .32.0 (Azure CNI overlay: pods do not consume VNet addresses).
resource "azurerm_subnet" "firewall" {
  name                 = "AzureFirewallSubnet"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [cidrsubnet(var.address_space, 10, 0)]
}

resource "azurerm_subnet" "appgw" {
  name                 = "appgw"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [cidrsubnet(var.address_space, 8, 1)]
}

resource "azurerm_subnet" "endpoints" {
  name                              = "private-endpoints"
  resource_group_name               = var.resource_group_name
  virtual_network_name              = azurerm_virtual_network.this.name
  address_prefixes                  = [cidrsubnet(var.address_space, 6, 4)]
  private_endpoint_network_policies = "Enabled"
}

resource "azurerm_subnet" "aks" {
  name                 = "aks-nodes"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [cidrsubnet(var.address_space, 4, 2)]
  service_endpoints    = ["Microsoft.AzureCosmosDB", "Microsoft.KeyVault", "Microsoft.EventHub"]
}

# Application Gateway v2 needs the GatewayManager range open; HTTPS from the internet reaches
# only the listener (Front Door is the only intended client; its WAF and the App Gateway WAF
# both filter).
resource "azurerm_network_security_group" "appgw" {
  name                = "${var.name}-appgw-nsg"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  security_rule {
    name                       = "gateway-manager"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "65200-65535"
    source_address_prefix      = "GatewayManager"
    destination_address_prefix = "*"
  }

  security_rule {
    name                       = "front-door-https"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "443"
    source_address_prefix      = "AzureFrontDoor.Backend"
    destination_address_prefix = "*"
  }

  security_rule {
    name                       = "azure-load-balancer"
    priority                   = 120
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "AzureLoadBalancer"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "appgw" {
  subnet_id                 = azurerm_subnet.appgw.id
  network_security_group_id = azurerm_network_security_group.appgw.id
}

# Private endpoints accept traffic from inside the VNet only.
resource "azurerm_network_security_group" "endpoints" {
  name                = "${var.name}-endpoints-nsg"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  security_rule {
    name                       = "vnet-only"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_ranges    = ["443", "6380", "9093", "10000"]
    source_address_prefix      = "VirtualNetwork"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "endpoints" {
  subnet_id                 = azurerm_subnet.endpoints.id
  network_security_group_id = azurerm_network_security_group.endpoints.id
}

resource "azurerm_network_security_group" "aks" {
  name                = "${var.name}-aks-nsg"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_subnet_network_security_group_association" "aks" {
  subnet_id                 = azurerm_subnet.aks.id
  network_security_group_id = azurerm_network_security_group.aks.id
}

output "vnet_id" {
  description = "VNet id."
  value       = azurerm_virtual_network.this.id
}

output "aks_subnet_id" {
  description = "AKS node subnet."
  value       = azurerm_subnet.aks.id
}

output "appgw_subnet_id" {
  description = "Application Gateway subnet."
  value       = azurerm_subnet.appgw.id
}

output "endpoints_subnet_id" {
  description = "Private endpoint subnet."
  value       = azurerm_subnet.endpoints.id
}
