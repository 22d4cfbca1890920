//! Retrieval: the only place a prompt's context comes from.
//!
//! - Fund facts and documents: BM25 ([`crate::bm25`]) over an in-memory index fed from this
//!   service's own store by its change feed (so every instance indexes the same data, and a
//!   restart rebuilds it); public fund facts plus the caller's tenant's documents only.
//! - The caller's portfolio: read from the caller's own partition `{tenant}:{investorId}` with
//!   the investor id taken from the verified token (or an explicitly authorised investor for
//!   admins), never from the question. Nothing the user types can select another investor's
//!   partition, so a prompt injection has nothing to reveal.
//! - NAV history and anomaly facts: the scheme's partition.
//!
//! Every passage becomes a [`Source`] the answer cites and returns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};
use nivesh_store::{Continuation, DocumentStore, IdRange};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::bm25::{Bm25Index, Passage, Scope};
use crate::mask::Kind;
use crate::model::{
    ANOMALIES, ANOMALY_PARTITION, Anomaly, AnomalyReason, DOCUMENTS, FACTS_ID, FundDocument,
    Holding, INVESTORS, NavPoint, PROFILE_ID, Profile, SCHEMES, SchemeFacts, TxnSummary,
    anomaly_doc_id, investor_partition, nav_id, reason_id,
};

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `portfolio`, `scheme:{code}`, `nav:{code}`, `doc:{id}#{n}`, `anomaly:{id}`.
    pub id: String,
    /// `portfolio`, `fund`, `nav-history`, `document`, `anomaly`.
    pub kind: String,
    pub title: String,
    pub text: String,
}

/// Sources plus the PII values the gateway itself put into them (masked by value).
#[derive(Debug, Default, Clone)]
pub struct Retrieved {
    pub sources: Vec<Source>,
    pub known_pii: Vec<(Kind, String)>,
}

impl Retrieved {
    pub fn extend(&mut self, other: Retrieved) {
        for s in other.sources {
            if !self.sources.iter().any(|x| x.id == s.id) {
                self.sources.push(s);
            }
        }
        self.known_pii.extend(other.known_pii);
    }
}

/// `12345678.5` -> `1,23,45,678.50` (Indian grouping, two decimals).
pub fn inr(amount: Decimal) -> String {
    let rounded = amount.round_dp(2);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let s = format!("{:.2}", rounded.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut groups = Vec::new();
    let (head, last3) = if int.len() > 3 {
        int.split_at(int.len() - 3)
    } else {
        ("", int)
    };
    let mut h = head;
    while h.len() > 2 {
        let (a, b) = h.split_at(h.len() - 2);
        groups.push(b.to_string());
        h = a;
    }
    if !h.is_empty() {
        groups.push(h.to_string());
    }
    groups.reverse();
    groups.push(last3.to_string());
    format!(
        "{}INR {}.{frac}",
        if negative { "-" } else { "" },
        groups.join(",")
    )
}

fn pct(from: Decimal, to: Decimal) -> Option<Decimal> {
    if from.is_zero() {
        return None;
    }
    Some(((to - from) / from * Decimal::from(100)).round_dp(2))
}

pub fn fact_text(f: &SchemeFacts) -> String {
    let mut s = format!("{} (scheme code {})", f.scheme_name, f.scheme_code);
    match (&f.category, &f.amc) {
        (Some(c), Some(a)) => s.push_str(&format!(" is a {c} scheme of {a}.")),
        (Some(c), None) => s.push_str(&format!(" is a {c} scheme.")),
        (None, Some(a)) => s.push_str(&format!(" is a scheme of {a}.")),
        (None, None) => s.push('.'),
    }
    if let Some(t) = &f.scheme_type {
        s.push_str(&format!(" Type: {t}."));
    }
    s.push_str(&format!(
        " Its latest NAV is {} on {}.",
        f.latest_nav.normalize(),
        f.latest_nav_date
    ));
    s
}

/// The store-fed BM25 index and the read-model queries.
pub struct Retriever {
    store: Arc<dyn DocumentStore>,
    index: RwLock<Bm25Index>,
    feeds: tokio::sync::Mutex<(Continuation, Continuation)>,
    indexed: Mutex<u64>,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retriever").finish_non_exhaustive()
    }
}

const FEED_PAGE: usize = 2_000;

impl Retriever {
    pub fn new(store: Arc<dyn DocumentStore>) -> Self {
        Retriever {
            store,
            index: RwLock::new(Bm25Index::new()),
            feeds: tokio::sync::Mutex::new((Continuation::default(), Continuation::default())),
            indexed: Mutex::new(0),
        }
    }

    /// Index everything the store's change feeds have that the index has not seen yet.
    pub async fn catch_up(&self) -> Result<usize, nivesh_store::Error> {
        let mut feeds = self.feeds.lock().await;
        let mut n = 0;
        loop {
            let (docs, next) = self.store.change_feed(SCHEMES, &feeds.0, FEED_PAGE).await?;
            let done = docs.len() < FEED_PAGE;
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            for d in docs.iter().filter(|d| d.id == FACTS_ID) {
                if let Ok(f) = serde_json::from_value::<SchemeFacts>(d.body.clone()) {
                    index.upsert(Passage {
                        id: format!("scheme:{}", f.scheme_code),
                        scope: Scope::Public,
                        title: f.scheme_name.clone(),
                        text: fact_text(&f),
                    });
                    n += 1;
                }
            }
            drop(index);
            feeds.0 = next;
            if done {
                break;
            }
        }
        loop {
            let (docs, next) = self
                .store
                .change_feed(DOCUMENTS, &feeds.1, FEED_PAGE)
                .await?;
            let done = docs.len() < FEED_PAGE;
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            for d in &docs {
                if let Ok(doc) = serde_json::from_value::<FundDocument>(d.body.clone()) {
                    for (i, chunk) in doc.chunks.iter().enumerate() {
                        index.upsert(Passage {
                            id: format!("doc:{}#{}", doc.document_id, i + 1),
                            scope: Scope::Tenant(doc.tenant.clone()),
                            title: doc.title.clone(),
                            text: chunk.clone(),
                        });
                        n += 1;
                    }
                }
            }
            drop(index);
            feeds.1 = next;
            if done {
                break;
            }
        }
        if n > 0 {
            let mut total = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
            *total += n as u64;
            metrics::gauge!("nivesh_genai_index_passages").set(
                self.index
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len() as f64,
            );
        }
        Ok(n)
    }

    /// BM25 over fund facts and the tenant's documents.
    pub async fn search(&self, query: &str, tenant: &str, k: usize) -> Retrieved {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "index catch-up failed; searching what is indexed");
        }
        let hits = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .search(query, tenant, k);
        Retrieved {
            sources: hits
                .into_iter()
                .map(|(p, _)| Source {
                    kind: if p.id.starts_with("doc:") {
                        "document".into()
                    } else {
                        "fund".into()
                    },
                    id: p.id,
                    title: p.title,
                    text: p.text,
                })
                .collect(),
            known_pii: Vec::new(),
        }
    }

    async fn facts(&self, code: &str) -> Result<Option<SchemeFacts>, nivesh_store::Error> {
        Ok(self
            .store
            .get(SCHEMES, code, FACTS_ID)
            .await?
            .and_then(|d| serde_json::from_value(d.body).ok()))
    }

    async fn navs(
        &self,
        code: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NavPoint>, nivesh_store::Error> {
        let docs = self
            .store
            .query_partition(
                SCHEMES,
                code,
                IdRange {
                    from: Some(nav_id(from)),
                    to: Some(nav_id(to)),
                    limit: Some(200),
                    descending: false,
                },
            )
            .await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect())
    }

    /// The month-to-date change of a scheme: the last NAV before the month of `latest` (or the
    /// month's first NAV) to `latest`.
    async fn month_change(
        &self,
        facts: &SchemeFacts,
    ) -> Result<Option<(NavPoint, Decimal)>, nivesh_store::Error> {
        let latest = facts.latest_nav_date;
        let month_start = latest.with_day(1).unwrap_or(latest);
        let navs = self
            .navs(
                &facts.scheme_code,
                month_start - ChronoDuration::days(15),
                latest,
            )
            .await?;
        let base = navs
            .iter()
            .rev()
            .find(|p| p.nav_date < month_start)
            .or_else(|| navs.iter().find(|p| p.nav_date < latest));
        Ok(base.and_then(|b| pct(b.nav, facts.latest_nav).map(|c| (b.clone(), c))))
    }

    /// The investor's profile (name, onboarding distributor), if `investor.onboarded` was seen.
    pub async fn profile(
        &self,
        tenant: &str,
        investor: &str,
    ) -> Result<Option<Profile>, nivesh_store::Error> {
        Ok(self
            .store
            .get(INVESTORS, &investor_partition(tenant, investor), PROFILE_ID)
            .await?
            .and_then(|d| serde_json::from_value(d.body).ok()))
    }

    /// The investor's portfolio as one passage (None when the read model has no holdings).
    pub async fn portfolio(
        &self,
        tenant: &str,
        investor: &str,
    ) -> Result<Retrieved, nivesh_store::Error> {
        let partition = investor_partition(tenant, investor);
        let range = |p: &str| IdRange {
            from: Some(format!("{p}:")),
            to: Some(format!("{p};")),
            limit: Some(500),
            descending: false,
        };
        let holdings: Vec<Holding> = self
            .store
            .query_partition(INVESTORS, &partition, range("h"))
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .filter(|h: &Holding| !h.units.is_zero())
            .collect();
        let txns: Vec<TxnSummary> = self
            .store
            .query_partition(INVESTORS, &partition, range("t"))
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect();
        let mut folios: BTreeMap<String, String> = BTreeMap::new();
        for t in &txns {
            folios.insert(t.scheme_code.clone(), t.folio.clone());
        }
        let mut known = vec![(Kind::Account, investor.to_string())];
        known.extend(folios.values().map(|f| (Kind::Account, f.clone())));
        if let Some(p) = self.profile(tenant, investor).await? {
            known.push((Kind::Name, p.name));
        }
        if holdings.is_empty() {
            return Ok(Retrieved {
                sources: vec![Source {
                    id: "portfolio".into(),
                    kind: "portfolio".into(),
                    title: "Your portfolio".into(),
                    text: format!(
                        "Investor {investor} has no holdings yet, so the portfolio is worth {}.",
                        inr(Decimal::ZERO)
                    ),
                }],
                known_pii: known,
            });
        }
        let mut lines = Vec::new();
        let (mut total_value, mut total_invested) = (Decimal::ZERO, Decimal::ZERO);
        let mut as_of: Option<NaiveDate> = None;
        let mut changes: Vec<(String, Decimal, NavPoint, SchemeFacts)> = Vec::new();
        let mut unknown = Vec::new();
        for h in &holdings {
            total_invested += h.invested;
            let Some(f) = self.facts(&h.scheme_code).await? else {
                unknown.push(h.scheme_code.clone());
                continue;
            };
            let value = (h.units * f.latest_nav).round_dp(2);
            total_value += value;
            as_of = as_of.max(Some(f.latest_nav_date));
            let folio = folios
                .get(&h.scheme_code)
                .map(|f| format!(", folio {f}"))
                .unwrap_or_default();
            lines.push(format!(
                "You hold {} units of {} (scheme code {}{folio}), worth {} at the NAV of {} on {}; you invested {} in it.",
                h.units.normalize(),
                f.scheme_name,
                f.scheme_code,
                inr(value),
                f.latest_nav.normalize(),
                f.latest_nav_date,
                inr(h.invested),
            ));
            if let Some((base, change)) = self.month_change(&f).await? {
                changes.push((f.scheme_name.clone(), change, base, f.clone()));
            }
        }
        let mut text = format!(
            "Portfolio of investor {investor}: your portfolio is worth {} at the latest NAVs{}, against {} invested, a gain of {}.",
            inr(total_value),
            as_of.map(|d| format!(" (as of {d})")).unwrap_or_default(),
            inr(total_invested),
            inr(total_value - total_invested),
        );
        for l in lines {
            text.push(' ');
            text.push_str(&l);
        }
        for c in &unknown {
            text.push_str(&format!(
                " The NAV of scheme code {c} is not known yet, so it is not valued."
            ));
        }
        for (name, change, base, f) in &changes {
            text.push_str(&format!(
                " This month {name} {} {}%, from a NAV of {} on {} to {} on {}.",
                if change.is_sign_negative() {
                    "lost"
                } else {
                    "gained"
                },
                change.abs().normalize(),
                base.nav.normalize(),
                base.nav_date,
                f.latest_nav.normalize(),
                f.latest_nav_date
            ));
        }
        match changes
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1))
        {
            Some((name, change, ..)) => text.push_str(&format!(
                " Of your funds, the fund that gained most this month is {name} ({}{}%).",
                if change.is_sign_negative() { "-" } else { "+" },
                change.abs().normalize()
            )),
            None => text.push_str(&format!(
                " Which fund gained most this month cannot be told yet: this month only one NAV{} is known for your funds.",
                as_of.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
        }
        Ok(Retrieved {
            sources: vec![Source {
                id: "portfolio".into(),
                kind: "portfolio".into(),
                title: "Your portfolio".into(),
                text,
            }],
            known_pii: known,
        })
    }

    /// Every anomaly, newest first.
    pub async fn anomalies(&self, limit: usize) -> Result<Vec<Anomaly>, nivesh_store::Error> {
        Ok(self
            .store
            .query_partition(
                ANOMALIES,
                ANOMALY_PARTITION,
                IdRange {
                    limit: Some(limit),
                    descending: true,
                    ..IdRange::default()
                },
            )
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect())
    }

    /// The facts around one flagged NAV, or None when no such anomaly exists.
    pub async fn anomaly(
        &self,
        scheme: &str,
        date: NaiveDate,
    ) -> Result<Option<(Anomaly, Retrieved)>, nivesh_store::Error> {
        let Some(doc) = self
            .store
            .get(ANOMALIES, ANOMALY_PARTITION, &anomaly_doc_id(scheme, date))
            .await?
        else {
            return Ok(None);
        };
        let Ok(anomaly) = serde_json::from_value::<Anomaly>(doc.body) else {
            return Ok(None);
        };
        let reason: Option<AnomalyReason> = self
            .store
            .get(SCHEMES, scheme, &reason_id(date))
            .await?
            .and_then(|d| serde_json::from_value(d.body).ok());
        let history = self
            .navs(scheme, date - ChronoDuration::days(31), date)
            .await?;
        let previous = history.iter().rev().find(|p| p.nav_date < date).cloned();
        let (prev_nav, prev_date) = match (&reason, &previous) {
            (
                Some(AnomalyReason {
                    previous_nav: Some(n),
                    previous_nav_date: Some(d),
                    ..
                }),
                _,
            ) => (Some(*n), Some(*d)),
            (_, Some(p)) => (Some(p.nav), Some(p.nav_date)),
            _ => (None, None),
        };
        let mut text = format!(
            "The NAV of {} (scheme code {}) on {} was {} and was flagged as an anomaly by NAV validation.",
            anomaly.scheme_name,
            scheme,
            date,
            anomaly.nav.normalize()
        );
        if let (Some(n), Some(d)) = (prev_nav, prev_date) {
            let change = pct(n, anomaly.nav)
                .map(|c| {
                    format!(
                        ", a change of {}{}%",
                        if c.is_sign_negative() { "-" } else { "+" },
                        c.abs().normalize()
                    )
                })
                .unwrap_or_default();
            text.push_str(&format!(
                " The previous NAV was {} on {}{change}.",
                n.normalize(),
                d
            ));
        } else {
            text.push_str(" No earlier NAV of this scheme is known to compare with.");
        }
        if let Some(r) = reason.and_then(|r| r.reason) {
            text.push_str(&format!(" Validation reason: {r}."));
        }
        text.push_str(
            " An anomaly flag means the change exceeded the usual daily movement for the scheme's category; the NAV was still published.",
        );
        let mut sources = vec![Source {
            id: format!("anomaly:{}", anomaly.anomaly_id),
            kind: "anomaly".into(),
            title: format!("NAV anomaly of {} on {date}", anomaly.scheme_name),
            text,
        }];
        if history.len() > 1 {
            let points: Vec<String> = history
                .iter()
                .rev()
                .take(10)
                .map(|p| format!("{} on {}", p.nav.normalize(), p.nav_date))
                .collect();
            sources.push(Source {
                id: format!("nav:{scheme}"),
                kind: "nav-history".into(),
                title: format!("NAV history of {}", anomaly.scheme_name),
                text: format!(
                    "Recent NAVs of {}: {}.",
                    anomaly.scheme_name,
                    points.join("; ")
                ),
            });
        }
        if let Some(f) = self.facts(scheme).await? {
            sources.push(Source {
                id: format!("scheme:{scheme}"),
                kind: "fund".into(),
                title: f.scheme_name.clone(),
                text: fact_text(&f),
            });
        }
        Ok(Some((
            anomaly,
            Retrieved {
                sources,
                known_pii: Vec::new(),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indian_grouping() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(inr(d("12345678.5")), "INR 1,23,45,678.50");
        assert_eq!(inr(d("10000")), "INR 10,000.00");
        assert_eq!(inr(d("999.999")), "INR 1,000.00");
        assert_eq!(inr(d("12")), "INR 12.00");
        assert_eq!(inr(d("-1500.25")), "-INR 1,500.25");
    }
}
