# terraform init -backend-config=envs/prod.backend.hcl
resource_group_name  = "nivesh-tfstate-rg"
storage_account_name = "niveshtfstate"
container_name       = "tfstate"
key                  = "prod.tfstate"
