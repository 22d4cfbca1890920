//! The topic catalog: every topic, what its record key is, how many partitions and how long it
//! keeps data, plus every consumer group and its retry tiers.
//!
//! This is the single source the dev broker creates topics from, tests subscribe from and
//! deployment reads (`nivesh topics`). A topic that is not here does not exist for the fleet.
//!
//! Partition counts are sized from throughput and are hard to change later (changing them moves
//! keys to other partitions and breaks per-key order), so each number carries its reasoning.

use std::time::Duration;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Seven days: long enough to rebuild a consumer's state after a week-long outage or a bad
/// deploy, short enough that brokers hold one week of 5k/s order traffic comfortably.
const RETENTION_7D_MS: i64 = 7 * DAY_MS;

/// Thirty days: the audit trail and dead letters are read by people (auditors, operators) who
/// need time; audit.events is also archived to the store, so the topic is not the record.
const RETENTION_30D_MS: i64 = 30 * DAY_MS;

/// What a topic's record key is. Per-key order only holds because every producer of a topic uses
/// the same key, so the catalog states it and producers take it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKey {
    /// AMFI scheme code: one scheme's NAVs are processed in order by one consumer, and the
    /// scheme's partition in the store matches.
    SchemeCode,
    /// Investor id: one investor's orders, payments and transactions stay in order (a redemption
    /// never overtakes the purchase it sells).
    InvestorId,
    /// Uploaded NAV file id: for per-file topics (chunk progress of one upload).
    FileId,
    /// Export job id: for per-export topics (statements and reports generated in the background).
    ExportId,
    /// Audit subject: the investor id, or the scheme code for NAV audit records, so each hash
    /// chain (which is per partition) covers one subject's history.
    AuditSubject,
    /// Name of the service that produced the record (operator alerts): one service's alerts stay
    /// in order.
    SourceService,
    /// Retry and dead-letter topics keep the key of the record that failed, so a replay from
    /// them lands on the same partition of the original topic.
    OriginalKey,
}

/// One topic as the catalog declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    pub key: PartitionKey,
    pub partitions: i32,
    /// How long the broker keeps records (`retention.ms`).
    pub retention_ms: i64,
    /// Log compaction (`cleanup.policy=compact`): only for topics that are a table of latest
    /// values. None today; every topic is an event log.
    pub compacted: bool,
    pub description: &'static str,
}

/// One consumer group: which service runs it, what it reads, and its retry tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupSpec {
    pub group: &'static str,
    pub service: &'static str,
    pub consumes: &'static [&'static str],
    /// One retry topic per entry (`{group}.retry.{index}`); the entry is the ceiling of the
    /// fully jittered delay before the next attempt. Tiers grow so the backoff is exponential
    /// across attempts; after the last tier fails the record goes to `{group}.dlq`.
    pub retry_delays: &'static [Duration],
}

/// A topic with owned strings: the catalog's topics plus the generated retry and dead-letter
/// topics of every group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicDef {
    pub name: String,
    pub key: PartitionKey,
    pub partitions: i32,
    pub retention_ms: i64,
    pub compacted: bool,
    pub description: String,
}

impl From<&TopicSpec> for TopicDef {
    fn from(t: &TopicSpec) -> Self {
        TopicDef {
            name: t.name.to_owned(),
            key: t.key,
            partitions: t.partitions,
            retention_ms: t.retention_ms,
            compacted: t.compacted,
            description: t.description.to_owned(),
        }
    }
}

/// NAV topics: ~45k schemes publish once a day in a burst after 9 pm IST; 12 partitions let up to
/// 12 calculator/publisher replicas share that burst, while keeping one scheme on one partition.
const NAV_PARTITIONS: i32 = 12;

/// The order flow (order, payment, transaction topics) peaks at ~5k/s on SIP dates; 24 partitions
/// give headroom for 24 consumers at ~200/s each. All investor-keyed topics of the flow share this
/// count so one investor lands on the same partition number everywhere (co-partitioned), which
/// keeps a consumer reading several of them seeing one investor's events on one worker.
const ORDER_FLOW_PARTITIONS: i32 = 24;

/// Low-volume topics (derived updates, notifications, audit): 6 is enough for parallelism and
/// keeps broker overhead small.
const LOW_VOLUME_PARTITIONS: i32 = 6;

/// Retry and dead-letter topics carry only failures, a tiny fraction of traffic.
const FAILURE_TOPIC_PARTITIONS: i32 = 6;

pub const TOPICS: &[TopicSpec] = &[
    TopicSpec {
        name: "nav.raw-feeds",
        key: PartitionKey::SchemeCode,
        partitions: NAV_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "One NAV row as received from an AMFI file (RawNavReceived), before validation.",
    },
    TopicSpec {
        name: "nav.validated",
        key: PartitionKey::SchemeCode,
        partitions: NAV_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "A NAV that passed validation (NavValidated), with anomaly flags.",
    },
    TopicSpec {
        name: "nav.rejected",
        key: PartitionKey::SchemeCode,
        partitions: NAV_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "A NAV that failed validation (NavRejected) with the reason; the ingestor records it against its file.",
    },
    TopicSpec {
        name: "nav.broadcast",
        key: PartitionKey::SchemeCode,
        partitions: NAV_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "A NAV published as the scheme's official value (NavPublished); orders and portfolios price from it.",
    },
    TopicSpec {
        name: "order.placed",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "An investor placed a purchase, redemption or SIP instalment order.",
    },
    TopicSpec {
        name: "payment.initiated",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "A payment was started at the gateway and awaits its webhook (PaymentInitiated).",
    },
    TopicSpec {
        name: "payment.success",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "The payment for an order was confirmed by the gateway.",
    },
    TopicSpec {
        name: "payment.failed",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "The payment for an order failed or was declined.",
    },
    TopicSpec {
        name: "payment.refunded",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "Money taken for an order that then failed was returned (PaymentRefunded).",
    },
    TopicSpec {
        name: "transaction.completed",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "Units were allotted or redeemed at the applicable NAV; the order is done.",
    },
    TopicSpec {
        name: "transaction.failed",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "Allotment could not execute an order (no NAV within the limit, not enough units): TransactionFailed.",
    },
    TopicSpec {
        name: "order.failed",
        key: PartitionKey::InvestorId,
        partitions: ORDER_FLOW_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "An order ended without a transaction (payment failed, cut-off missed, rejected).",
    },
    TopicSpec {
        name: "portfolio.updated",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "An investor's holdings or valuation changed.",
    },
    TopicSpec {
        name: "notification.requested",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "A message to send to an investor (email/SMS/push), with its template and data.",
    },
    TopicSpec {
        name: "audit.events",
        key: PartitionKey::AuditSubject,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_30D_MS,
        compacted: false,
        description: "Hash-chained audit records (investor actions; NAV audit keyed by scheme code); archived to the store.",
    },
    TopicSpec {
        name: "support.tickets",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_30D_MS,
        compacted: false,
        description: "Support tickets for a person (TicketCreated), e.g. a GenAI answer blocked by policy or poorly grounded; keyed by investor id (the tenant when there is none).",
    },
    TopicSpec {
        name: "ops.alerts",
        key: PartitionKey::SourceService,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_30D_MS,
        compacted: false,
        description: "Operator alerts (AlertRaised) any service raises when it needs a person: export delivery failed, LLM quota exhausted.",
    },
    TopicSpec {
        name: "investor.onboarded",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "An investor was onboarded by a distributor and submitted to the KRA (InvestorOnboarded; PAN masked, no Aadhaar).",
    },
    TopicSpec {
        name: "kyc.verified",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_7D_MS,
        compacted: false,
        description: "The KRA's KYC verdict for an investor: VALIDATED, ON_HOLD or REJECTED (KycVerified).",
    },
    TopicSpec {
        name: "investor.erased",
        key: PartitionKey::InvestorId,
        partitions: LOW_VOLUME_PARTITIONS,
        retention_ms: RETENTION_30D_MS,
        compacted: false,
        description: "An investor's personal data was erased under the DPDP Act (InvestorErased); holders of their data erase or anonymise it.",
    },
];

/// Store or broker hiccups clear in seconds; three tiers (ceilings 1 s, 10 s, 60 s) ride out a
/// minute-long outage before a record is parked in the dead-letter topic.
const STANDARD_RETRIES: &[Duration] = &[
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// Payment gateway outages last minutes, and a dead-lettered payment needs a person; the last
/// tier waits five minutes.
const PAYMENT_RETRIES: &[Duration] = &[
    Duration::from_secs(2),
    Duration::from_secs(30),
    Duration::from_secs(300),
];

pub const GROUPS: &[ConsumerGroupSpec] = &[
    ConsumerGroupSpec {
        group: "nav-calculator",
        service: "nav-calculator",
        consumes: &["nav.raw-feeds"],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "nav-publisher",
        service: "nav-publisher",
        consumes: &["nav.validated"],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "payment",
        service: "payment",
        // Purchases to collect; failed orders whose money must be refunded.
        consumes: &["order.placed", "order.failed"],
        retry_delays: PAYMENT_RETRIES,
    },
    ConsumerGroupSpec {
        group: "order",
        service: "order",
        // Every step of an order's timeline, plus NAVs for the scheme table and unit estimates,
        // plus the identity events: who is onboarded, by which distributor, with what KYC
        // verdict, and who was erased (who may place orders and who may act for them).
        consumes: &[
            "payment.initiated",
            "payment.success",
            "payment.failed",
            "payment.refunded",
            "transaction.completed",
            "transaction.failed",
            "portfolio.updated",
            "nav.broadcast",
            "investor.onboarded",
            "kyc.verified",
            "investor.erased",
        ],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "allotment",
        service: "allotment",
        // Paid purchases and accepted redemptions/switches, priced by the published NAVs.
        consumes: &["payment.success", "order.placed", "nav.broadcast"],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "portfolio",
        service: "portfolio",
        // Holdings and their valuation; the tenant and distributor of onboarded investors (who
        // may read whose portfolio) from the identity events.
        consumes: &[
            "transaction.completed",
            "nav.broadcast",
            "investor.onboarded",
            "investor.erased",
        ],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "notification",
        service: "notification",
        consumes: &[
            "order.placed",
            "payment.failed",
            "payment.refunded",
            "transaction.completed",
            "order.failed",
        ],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "genai-gateway",
        service: "genai-gateway",
        // Its read model: schemes and NAV history with anomaly flags (nav.broadcast), anomaly
        // reasons (nav.validated), holdings (portfolio.updated) and folios and transactions
        // (transaction.completed); who onboarded an investor and their name, for access and
        // masking (investor.onboarded); erasure requests (investor.erased).
        consumes: &[
            "nav.broadcast",
            "nav.validated",
            "portfolio.updated",
            "transaction.completed",
            "investor.onboarded",
            "investor.erased",
        ],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "nav-ingestor",
        service: "nav-ingestor",
        consumes: &["nav.rejected"],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "onboarding",
        service: "onboarding",
        // Commissions of distributor-onboarded investors; NAVs for the scheme -> category table
        // the commission rates are looked up by.
        consumes: &["transaction.completed", "nav.broadcast"],
        retry_delays: STANDARD_RETRIES,
    },
    ConsumerGroupSpec {
        group: "compliance",
        service: "compliance",
        // The audit ledger: every business event (NAVs published/rejected, the order flow,
        // portfolio, notification and support requests, identity), hash-chained per investor
        // (per scheme for NAVs).
        consumes: &[
            "nav.broadcast",
            "nav.rejected",
            "order.placed",
            "order.failed",
            "payment.initiated",
            "payment.success",
            "payment.failed",
            "payment.refunded",
            "transaction.completed",
            "transaction.failed",
            "portfolio.updated",
            "notification.requested",
            "support.tickets",
            "investor.onboarded",
            "kyc.verified",
            "investor.erased",
        ],
        retry_delays: STANDARD_RETRIES,
    },
];

/// Retry tier `tier` (0-based, the index into `retry_delays`) of a group: `{group}.retry.{tier}`.
pub fn retry_topic(group: &str, tier: usize) -> String {
    format!("{group}.retry.{tier}")
}

/// The dead-letter topic of a group: `{group}.dlq`.
pub fn dead_letter_topic(group: &str) -> String {
    format!("{group}.dlq")
}

/// The catalog's spec of a group, if it exists.
pub fn group(name: &str) -> Option<&'static ConsumerGroupSpec> {
    GROUPS.iter().find(|g| g.group == name)
}

/// The catalog's spec of a topic, if it exists (retry and dead-letter topics are not in it).
pub fn topic(name: &str) -> Option<&'static TopicSpec> {
    TOPICS.iter().find(|t| t.name == name)
}

/// Every topic the fleet needs: the catalog plus each group's retry tiers and dead-letter topic.
pub fn all_topics() -> Vec<TopicDef> {
    let mut all: Vec<TopicDef> = TOPICS.iter().map(TopicDef::from).collect();
    for g in GROUPS {
        for (tier, delay) in g.retry_delays.iter().enumerate() {
            all.push(TopicDef {
                name: retry_topic(g.group, tier),
                key: PartitionKey::OriginalKey,
                partitions: FAILURE_TOPIC_PARTITIONS,
                // A record waits at most its tier's delay here, so the standard week is plenty.
                retention_ms: RETENTION_7D_MS,
                compacted: false,
                description: format!(
                    "Retry tier {tier} of group {}: records wait up to {} s before the next attempt.",
                    g.group,
                    delay.as_secs()
                ),
            });
        }
        all.push(TopicDef {
            name: dead_letter_topic(g.group),
            key: PartitionKey::OriginalKey,
            partitions: FAILURE_TOPIC_PARTITIONS,
            retention_ms: RETENTION_30D_MS,
            compacted: false,
            description: format!(
                "Dead letters of group {}: records that failed permanently or exhausted their retries, with reason headers.",
                g.group
            ),
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every group consumes only topics that exist in the catalog.
    #[test]
    fn groups_consume_catalog_topics() {
        for g in GROUPS {
            for t in g.consumes {
                assert!(
                    topic(t).is_some(),
                    "group {} consumes unknown topic {t}",
                    g.group
                );
            }
        }
    }

    /// Topic names are unique across the catalog and the generated retry/DLQ topics.
    #[test]
    fn all_topic_names_are_unique() {
        let all = all_topics();
        let mut names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    /// The generated topics include one retry topic per tier and one DLQ per group.
    #[test]
    fn all_topics_includes_retry_and_dlq() {
        let all = all_topics();
        let has = |n: &str| all.iter().any(|t| t.name == n);
        for g in GROUPS {
            assert!(has(&dead_letter_topic(g.group)));
            for tier in 0..g.retry_delays.len() {
                assert!(has(&retry_topic(g.group, tier)));
            }
            assert!(!has(&retry_topic(g.group, g.retry_delays.len())));
        }
        let expected = TOPICS.len()
            + GROUPS
                .iter()
                .map(|g| g.retry_delays.len() + 1)
                .sum::<usize>();
        assert_eq!(all.len(), expected);
    }

    /// The partition counts follow the sizing rules: NAV 12, order flow 24, the rest 6.
    #[test]
    fn partition_counts_follow_sizing() {
        for t in TOPICS {
            let expected = if t.name.starts_with("nav.") {
                12
            } else if ["order.", "payment.", "transaction."]
                .iter()
                .any(|p| t.name.starts_with(p))
            {
                24
            } else {
                6
            };
            assert_eq!(t.partitions, expected, "{}", t.name);
        }
        assert_eq!(
            topic("audit.events").map(|t| t.retention_ms),
            Some(30 * DAY_MS)
        );
    }

    /// Group lookup finds catalog groups and rejects unknown names.
    #[test]
    fn group_lookup() {
        assert_eq!(
            group("payment").map(|g| g.consumes),
            Some(&["order.placed", "order.failed"][..])
        );
        assert!(group("no-such-group").is_none());
        assert_eq!(retry_topic("order", 1), "order.retry.1");
        assert_eq!(dead_letter_topic("order"), "order.dlq");
    }
}
