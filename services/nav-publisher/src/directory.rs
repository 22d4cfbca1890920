//! Scheme search: `GET /v1/nav/schemes?amc=&category=&q=`.
//!
//! The store answers point reads and single-partition ranges only (as Cosmos DB does cheaply), so
//! search runs on an in-memory index of the ~15k schemes: loaded at start from the `scheme_directory`
//! container (one document per scheme, all in one small partition) and updated after every publish.
//! The index holds a few MB; a query scans it in well under a millisecond.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nivesh_store::{Batch, DocumentStore, IdRange, WriteOp};

use crate::model::SchemeNav;

pub const DIRECTORY: &str = "scheme_directory";
const PARTITION: &str = "schemes";
/// Cosmos DB's limit on the operations of one transactional batch.
const DIRECTORY_BATCH_OPS: usize = 100;

/// The search index.
#[derive(Clone, Default)]
pub struct SchemeDirectory {
    entries: Arc<RwLock<BTreeMap<String, Entry>>>,
}

#[derive(Clone)]
struct Entry {
    nav: SchemeNav,
    name_lower: String,
    amc_lower: String,
    category_lower: String,
}

/// A search request; empty filters match everything.
#[derive(Debug, Default, Clone)]
pub struct SearchQuery {
    pub amc: Option<String>,
    pub category: Option<String>,
    pub q: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

impl SchemeDirectory {
    /// Load every scheme's directory entry from the store.
    pub async fn load(store: &Arc<dyn DocumentStore>) -> nivesh_store::Result<Self> {
        let dir = SchemeDirectory::default();
        let mut from: Option<String> = None;
        loop {
            let page = store
                .query_partition(
                    DIRECTORY,
                    PARTITION,
                    IdRange {
                        from: from.clone(),
                        to: None,
                        limit: Some(5000),
                        descending: false,
                    },
                )
                .await?;
            let last = page.last().map(|d| d.id.clone());
            let n = page.len();
            for d in page {
                if Some(&d.id) == from.as_ref() {
                    continue;
                }
                if let Ok(nav) = serde_json::from_value::<SchemeNav>(d.body) {
                    dir.insert(nav);
                }
            }
            if n < 5000 {
                break;
            }
            from = last;
        }
        Ok(dir)
    }

    /// Record many schemes' latest NAVs in the store's directory (one batch: the directory is
    /// one partition) and in the index.
    pub async fn upsert_many(
        &self,
        store: &Arc<dyn DocumentStore>,
        navs: &[SchemeNav],
    ) -> nivesh_store::Result<()> {
        let mut latest: BTreeMap<&str, &SchemeNav> = BTreeMap::new();
        for nav in navs {
            match latest.get(nav.scheme_code.as_str()) {
                Some(seen) if seen.nav_date > nav.nav_date => {}
                _ => {
                    latest.insert(&nav.scheme_code, nav);
                }
            }
        }
        // Batches of at most 100 upserts: a Cosmos DB transactional batch holds no more (a NAV
        // day's flush of ~13,000 schemes as one batch was refused and retried forever on
        // Cosmos). Upserts are idempotent, so a partly failed flush is simply retried whole.
        let schemes: Vec<&SchemeNav> = latest.values().copied().collect();
        let batches = schemes
            .chunks(DIRECTORY_BATCH_OPS)
            .map(|chunk| {
                chunk
                    .iter()
                    .fold(Batch::new(DIRECTORY, PARTITION), |batch, nav| {
                        batch.op(WriteOp::Upsert {
                            id: nav.scheme_code.clone(),
                            body: serde_json::to_value(nav).expect("serializable"),
                            ttl: None,
                        })
                    })
            })
            .collect();
        for result in store.commit_many(batches).await {
            result?;
        }
        for nav in latest.into_values() {
            self.insert(nav.clone());
        }
        Ok(())
    }

    fn insert(&self, nav: SchemeNav) {
        let entry = Entry {
            name_lower: nav.scheme_name.to_lowercase(),
            amc_lower: nav.amc.as_deref().unwrap_or("").to_lowercase(),
            category_lower: nav.category.as_deref().unwrap_or("").to_lowercase(),
            nav,
        };
        let mut map = self.entries.write().expect("directory lock");
        match map.get(&entry.nav.scheme_code) {
            Some(existing) if existing.nav.nav_date > entry.nav.nav_date => {}
            _ => {
                map.insert(entry.nav.scheme_code.clone(), entry);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().expect("directory lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Matching schemes ordered by scheme code, one page, and the total match count.
    /// `amc` and `category` match as case-insensitive substrings; every word of `q` must appear
    /// in the scheme name, AMC or code.
    pub fn search(&self, query: &SearchQuery) -> (Vec<SchemeNav>, usize) {
        let amc = query.amc.as_deref().map(str::to_lowercase);
        let category = query.category.as_deref().map(str::to_lowercase);
        let words: Vec<String> = query
            .q
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let map = self.entries.read().expect("directory lock");
        let mut total = 0;
        let mut page = Vec::new();
        for e in map.values() {
            if amc
                .as_ref()
                .is_some_and(|a| !e.amc_lower.contains(a.as_str()))
                || category
                    .as_ref()
                    .is_some_and(|c| !e.category_lower.contains(c.as_str()))
                || !words.iter().all(|w| {
                    e.name_lower.contains(w.as_str())
                        || e.amc_lower.contains(w.as_str())
                        || e.nav.scheme_code == *w
                })
            {
                continue;
            }
            if total >= query.offset && page.len() < query.limit {
                page.push(e.nav.clone());
            }
            total += 1;
        }
        (page, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nav(code: &str, name: &str, amc: &str, category: &str) -> SchemeNav {
        SchemeNav {
            scheme_code: code.into(),
            scheme_name: name.into(),
            amc: Some(amc.into()),
            category: Some(category.into()),
            scheme_type: None,
            isin_growth: None,
            isin_reinvestment: None,
            nav: "10".parse().unwrap(),
            nav_date: "2025-02-25".parse().unwrap(),
            anomaly: false,
            anomaly_reason: None,
            change_kind: "NEW".into(),
            event_id: code.into(),
            published_at: chrono::Utc::now(),
        }
    }

    /// Filters combine, words must all match, and pages partition the result with a stable total.
    #[test]
    fn search_filters_and_pages() {
        let dir = SchemeDirectory::default();
        dir.insert(nav(
            "1",
            "Alpha Liquid Fund - Direct",
            "Alpha Mutual Fund",
            "Debt Scheme - Liquid Fund",
        ));
        dir.insert(nav(
            "2",
            "Alpha Bluechip Fund",
            "Alpha Mutual Fund",
            "Equity Scheme - Large Cap Fund",
        ));
        dir.insert(nav(
            "3",
            "Beta Liquid Fund",
            "Beta Mutual Fund",
            "Debt Scheme - Liquid Fund",
        ));
        let q = |amc: Option<&str>, cat: Option<&str>, q: Option<&str>| SearchQuery {
            amc: amc.map(Into::into),
            category: cat.map(Into::into),
            q: q.map(Into::into),
            offset: 0,
            limit: 10,
        };
        let codes = |(v, _): (Vec<SchemeNav>, usize)| {
            v.into_iter().map(|n| n.scheme_code).collect::<Vec<_>>()
        };
        assert_eq!(codes(dir.search(&q(Some("alpha"), None, None))), ["1", "2"]);
        assert_eq!(
            codes(dir.search(&q(None, Some("liquid"), None))),
            ["1", "3"]
        );
        assert_eq!(
            codes(dir.search(&q(Some("alpha"), Some("liquid"), None))),
            ["1"]
        );
        assert_eq!(
            codes(dir.search(&q(None, None, Some("liquid direct")))),
            ["1"]
        );
        let page2 = dir.search(&SearchQuery {
            offset: 1,
            limit: 1,
            ..Default::default()
        });
        assert_eq!((page2.0[0].scheme_code.as_str(), page2.1), ("2", 3));
    }
}
