# What the code declares, in the shape Terraform needs. deploy-check compares both blocks with
# the code and fails on drift: topics with `cargo run -q -p nivesh-fleet -- topics`
# (crates/bus/src/catalog.rs), containers with the container names the services commit to.

locals {
  # BEGIN GENERATED TOPICS (scripts/deploy-check --sync-topics rewrites this block)
  topics = {
    "nav.raw-feeds"          = { partitions = 12, retention_ms = 604800000 }
    "nav.validated"          = { partitions = 12, retention_ms = 604800000 }
    "nav.rejected"           = { partitions = 12, retention_ms = 604800000 }
    "nav.broadcast"          = { partitions = 12, retention_ms = 604800000 }
    "order.placed"           = { partitions = 24, retention_ms = 604800000 }
    "payment.initiated"      = { partitions = 24, retention_ms = 604800000 }
    "payment.success"        = { partitions = 24, retention_ms = 604800000 }
    "payment.failed"         = { partitions = 24, retention_ms = 604800000 }
    "payment.refunded"       = { partitions = 24, retention_ms = 604800000 }
    "transaction.completed"  = { partitions = 24, retention_ms = 604800000 }
    "transaction.failed"     = { partitions = 24, retention_ms = 604800000 }
    "order.failed"           = { partitions = 24, retention_ms = 604800000 }
    "portfolio.updated"      = { partitions = 6, retention_ms = 604800000 }
    "notification.requested" = { partitions = 6, retention_ms = 604800000 }
    "audit.events"           = { partitions = 6, retention_ms = 2592000000 }
    "support.tickets"        = { partitions = 6, retention_ms = 2592000000 }
    "ops.alerts"             = { partitions = 6, retention_ms = 2592000000 }
    "investor.onboarded"     = { partitions = 6, retention_ms = 604800000 }
    "kyc.verified"           = { partitions = 6, retention_ms = 604800000 }
    "investor.erased"        = { partitions = 6, retention_ms = 2592000000 }
    "nav-calculator.retry.0" = { partitions = 6, retention_ms = 604800000 }
    "nav-calculator.retry.1" = { partitions = 6, retention_ms = 604800000 }
    "nav-calculator.retry.2" = { partitions = 6, retention_ms = 604800000 }
    "nav-calculator.dlq"     = { partitions = 6, retention_ms = 2592000000 }
    "nav-publisher.retry.0"  = { partitions = 6, retention_ms = 604800000 }
    "nav-publisher.retry.1"  = { partitions = 6, retention_ms = 604800000 }
    "nav-publisher.retry.2"  = { partitions = 6, retention_ms = 604800000 }
    "nav-publisher.dlq"      = { partitions = 6, retention_ms = 2592000000 }
    "payment.retry.0"        = { partitions = 6, retention_ms = 604800000 }
    "payment.retry.1"        = { partitions = 6, retention_ms = 604800000 }
    "payment.retry.2"        = { partitions = 6, retention_ms = 604800000 }
    "payment.dlq"            = { partitions = 6, retention_ms = 2592000000 }
    "order.retry.0"          = { partitions = 6, retention_ms = 604800000 }
    "order.retry.1"          = { partitions = 6, retention_ms = 604800000 }
    "order.retry.2"          = { partitions = 6, retention_ms = 604800000 }
    "order.dlq"              = { partitions = 6, retention_ms = 2592000000 }
    "allotment.retry.0"      = { partitions = 6, retention_ms = 604800000 }
    "allotment.retry.1"      = { partitions = 6, retention_ms = 604800000 }
    "allotment.retry.2"      = { partitions = 6, retention_ms = 604800000 }
    "allotment.dlq"          = { partitions = 6, retention_ms = 2592000000 }
    "portfolio.retry.0"      = { partitions = 6, retention_ms = 604800000 }
    "portfolio.retry.1"      = { partitions = 6, retention_ms = 604800000 }
    "portfolio.retry.2"      = { partitions = 6, retention_ms = 604800000 }
    "portfolio.dlq"          = { partitions = 6, retention_ms = 2592000000 }
    "notification.retry.0"   = { partitions = 6, retention_ms = 604800000 }
    "notification.retry.1"   = { partitions = 6, retention_ms = 604800000 }
    "notification.retry.2"   = { partitions = 6, retention_ms = 604800000 }
    "notification.dlq"       = { partitions = 6, retention_ms = 2592000000 }
    "genai-gateway.retry.0"  = { partitions = 6, retention_ms = 604800000 }
    "genai-gateway.retry.1"  = { partitions = 6, retention_ms = 604800000 }
    "genai-gateway.retry.2"  = { partitions = 6, retention_ms = 604800000 }
    "genai-gateway.dlq"      = { partitions = 6, retention_ms = 2592000000 }
    "nav-ingestor.retry.0"   = { partitions = 6, retention_ms = 604800000 }
    "nav-ingestor.retry.1"   = { partitions = 6, retention_ms = 604800000 }
    "nav-ingestor.retry.2"   = { partitions = 6, retention_ms = 604800000 }
    "nav-ingestor.dlq"       = { partitions = 6, retention_ms = 2592000000 }
    "onboarding.retry.0"     = { partitions = 6, retention_ms = 604800000 }
    "onboarding.retry.1"     = { partitions = 6, retention_ms = 604800000 }
    "onboarding.retry.2"     = { partitions = 6, retention_ms = 604800000 }
    "onboarding.dlq"         = { partitions = 6, retention_ms = 2592000000 }
    "compliance.retry.0"     = { partitions = 6, retention_ms = 604800000 }
    "compliance.retry.1"     = { partitions = 6, retention_ms = 604800000 }
    "compliance.retry.2"     = { partitions = 6, retention_ms = 604800000 }
    "compliance.dlq"         = { partitions = 6, retention_ms = 2592000000 }
  }
  # END GENERATED TOPICS

  day_seconds = 86400

  # One Cosmos DB database per service (each service owns its data); every container is
  # partitioned on /partitionKey, whose value the service sets (see docs/architecture.md,
  # "Services and data ownership"). default_ttl -1 = TTL on, nothing expires unless the document
  # says so (inbox markers carry 7 days, INBOX_TTL); a positive value expires every document.
  # event_ledger is the runtime's per-service ledger of received events (partitioned by topic).
  cosmos_databases = {
    "nav-ingestor" = {
      nav_files = { key = "file id", default_ttl = -1 }
      # Landing-zone markers (one per ingested object version), one small partition.
      landing      = { key = "constant: objects", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "nav-calculator" = {
      nav_state    = { key = "scheme code", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "nav-publisher" = {
      nav              = { key = "scheme code", default_ttl = -1 }
      scheme_directory = { key = "constant: one small partition", default_ttl = -1 }
      event_ledger     = { key = "topic", default_ttl = -1 }
    }
    "order" = {
      # Orders, idempotency records (48 h TTL per document), SIPs, positions and unit locks.
      orders = { key = "investor id", default_ttl = -1 }
      # Order id / SIP id -> investor id (point reads by id stay single-partition).
      order_locators = { key = "order id", default_ttl = -1 }
      sip_locators   = { key = "sip id", default_ttl = -1 }
      sip_index      = { key = "day of month", default_ttl = -1 }
      schemes        = { key = "scheme code", default_ttl = -1 }
      # Replay records of ops endpoints (SIP runs), 48 h TTL per document.
      ops          = { key = "idempotency key", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "payment" = {
      payments     = { key = "investor id", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "allotment" = {
      # Lots, allotment records, pending legs: the RTA unit ledger.
      allotment      = { key = "investor id", default_ttl = -1 }
      allotment_nav  = { key = "scheme code", default_ttl = -1 }
      allotment_wait = { key = "scheme code", default_ttl = -1 }
      event_ledger   = { key = "topic", default_ttl = -1 }
    }
    "portfolio" = {
      portfolio    = { key = "investor id", default_ttl = -1 }
      scheme_nav   = { key = "scheme code", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "notification" = {
      notifications = { key = "investor id", default_ttl = -1 }
      event_ledger  = { key = "topic", default_ttl = -1 }
    }
    "genai-gateway" = {
      # Read model for retrieval: scheme facts and NAV history; rare NAV anomalies in one
      # partition; holdings per "tenant:investor id"; fund documents per tenant.
      genai_schemes   = { key = "scheme code", default_ttl = -1 }
      genai_anomalies = { key = "constant (anomalies)", default_ttl = -1 }
      genai_investors = { key = "tenant:investor id", default_ttl = -1 }
      genai_documents = { key = "tenant", default_ttl = -1 }
      # Metered requests (masked prompt and answer, hashed user id): SEBI keeps the audit trail
      # 7 years (2557 days with leap days), then it expires.
      genai_audit  = { key = "tenant:date", default_ttl = 2557 * local.day_seconds }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "onboarding" = {
      # Investor records (masked; no PAN, Aadhaar, DOB or account number) and credential requests.
      investors = { key = "investor id", default_ttl = -1 }
      # The PII vault: ciphertext + the per-investor data key wrapped by the Key Vault KEK;
      # erasure removes the wrapped key (crypto-shred).
      vault                 = { key = "investor id", default_ttl = -1 }
      distributor_investors = { key = "distributor id", default_ttl = -1 }
      leads                 = { key = "distributor id", default_ttl = -1 }
      # One investor per PAN per tenant: partition = HMAC-SHA256(index key, tenant + PAN).
      pan_claims = { key = "claim key (HMAC of tenant+PAN)", default_ttl = -1 }
      # Commission accruals per distributor (with the consumer's inbox markers).
      commissions  = { key = "distributor id", default_ttl = -1 }
      schemes      = { key = "scheme code", default_ttl = -1 }
      event_ledger = { key = "topic", default_ttl = -1 }
    }
    "compliance" = {
      # The hash-chained audit ledger (one chain per partition: investor id, scheme-<code>,
      # access-<tenant>-<subject>); every document carries its own TTL of [service]
      # retention_days (7 years, 2557 days), so nothing expires earlier.
      ledger = { key = "ledger partition", default_ttl = -1 }
      # Per-investor data keys wrapped by the KEK; erasure removes the wrapped key (crypto-shred).
      ledger_keys = { key = "investor id", default_ttl = -1 }
      # What SEBI exports are validated from: NAVs by scheme, payments by order, transactions by day.
      facts   = { key = "nav-<scheme> / order-<id> / txn-<tenant>-<date>", default_ttl = -1 }
      exports = { key = "export id", default_ttl = -1 }
      # Time-boxed access grants; each expires a day after its window.
      grants = { key = "tenant", default_ttl = -1 }
      # Every service's database has the runtime's event_ledger container (deploy-check requires
      # it); compliance keeps its own records in `ledger` and leaves this one empty.
      event_ledger = { key = "topic", default_ttl = -1 }
    }
  }
}
