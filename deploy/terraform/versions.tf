terraform {
  required_version = ">= 1.9.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.14"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Remote state in an Azure Storage account, one state per environment. The account, container
  # and key come from envs/<env>.backend.hcl:
  #   terraform init -backend-config=envs/prod.backend.hcl
  # The storage account is created once by hand (or a bootstrap stack) with versioning and soft
  # delete on, so a bad apply can be rolled back to an earlier state version.
  backend "azurerm" {
    use_azuread_auth = true
  }
}

provider "azurerm" {
  features {
    key_vault {
      purge_soft_delete_on_destroy = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
  subscription_id     = var.subscription_id
  storage_use_azuread = true
}
