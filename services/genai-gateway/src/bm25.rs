//! A small in-memory BM25 index over fund facts and uploaded documents.
//!
//! Why BM25 and not embeddings: the corpus is short, factual and full of proper nouns and
//! codes (scheme names, AMCs, categories, scheme codes) where exact term matching is what finds
//! the right passage; BM25 needs no model, no GPU and no external call (so nothing leaves the
//! service before masking), is deterministic (tests and audits can reproduce a retrieval), and
//! re-indexes a changed NAV in microseconds. Semantic recall for paraphrases is the known
//! trade-off; an embedding retriever can sit behind the same [`Bm25Index::search`] shape later.
//!
//! Scoring (Robertson/Spärck Jones, the Lucene variant): for query terms `q` and a passage `d`,
//! `score(d) = Σ idf(q) · tf(q,d)·(k1+1) / (tf(q,d) + k1·(1 − b + b·|d|/avgdl))` with
//! `idf(q) = ln(1 + (N − df(q) + 0.5)/(df(q) + 0.5))`, `k1 = 1.2`, `b = 0.75`. Scores are `f64`:
//! they rank passages and are never money.
//!
//! Every passage has a scope: public (fund facts) or one tenant (documents); a search only ever
//! sees public passages and those of the caller's tenant.

use std::collections::HashMap;

use crate::policy::content_words;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Who may retrieve a passage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Public,
    Tenant(String),
}

/// One indexed passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// Stable id (`scheme:119551`, `doc:{id}#2`).
    pub id: String,
    pub scope: Scope,
    pub title: String,
    pub text: String,
}

#[derive(Debug)]
struct Entry {
    passage: Passage,
    len: usize,
    terms: HashMap<String, u32>,
}

/// The index. Not synchronised: the owner wraps it in a lock.
#[derive(Debug, Default)]
pub struct Bm25Index {
    entries: Vec<Option<Entry>>,
    slots: HashMap<String, usize>,
    free: Vec<usize>,
    postings: HashMap<String, HashMap<usize, u32>>,
    total_len: usize,
    live: usize,
}

/// Terms of a text: content words plus numbers (scheme codes), lower-cased.
pub fn terms(text: &str) -> Vec<String> {
    let mut t = content_words(text);
    t.extend(
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|s| s.len() >= 3)
            .map(str::to_string),
    );
    t
}

impl Bm25Index {
    pub fn new() -> Self {
        Bm25Index::default()
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn get(&self, id: &str) -> Option<&Passage> {
        let slot = *self.slots.get(id)?;
        self.entries[slot].as_ref().map(|e| &e.passage)
    }

    /// Add a passage, replacing one with the same id.
    pub fn upsert(&mut self, passage: Passage) {
        self.remove(&passage.id);
        let words = terms(&format!("{} {}", passage.title, passage.text));
        let mut tf: HashMap<String, u32> = HashMap::new();
        for w in &words {
            *tf.entry(w.clone()).or_insert(0) += 1;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        for (term, n) in &tf {
            self.postings
                .entry(term.clone())
                .or_default()
                .insert(slot, *n);
        }
        self.total_len += words.len();
        self.live += 1;
        self.slots.insert(passage.id.clone(), slot);
        self.entries[slot] = Some(Entry {
            passage,
            len: words.len(),
            terms: tf,
        });
    }

    pub fn remove(&mut self, id: &str) {
        let Some(slot) = self.slots.remove(id) else {
            return;
        };
        if let Some(entry) = self.entries[slot].take() {
            for term in entry.terms.keys() {
                if let Some(p) = self.postings.get_mut(term) {
                    p.remove(&slot);
                    if p.is_empty() {
                        self.postings.remove(term);
                    }
                }
            }
            self.total_len -= entry.len;
            self.live -= 1;
            self.free.push(slot);
        }
    }

    /// The best `k` passages for `query` visible to `tenant`, best first, with their scores.
    pub fn search(&self, query: &str, tenant: &str, k: usize) -> Vec<(Passage, f64)> {
        if self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f64;
        let avgdl = (self.total_len as f64 / n).max(1.0);
        let mut query_terms = terms(query);
        query_terms.sort();
        query_terms.dedup();
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for term in &query_terms {
            let Some(posting) = self.postings.get(term) else {
                continue;
            };
            let df = posting.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for (slot, tf) in posting {
                let Some(entry) = &self.entries[*slot] else {
                    continue;
                };
                if !visible(&entry.passage.scope, tenant) {
                    continue;
                }
                let tf = f64::from(*tf);
                let norm = K1 * (1.0 - B + B * entry.len as f64 / avgdl);
                *scores.entry(*slot).or_insert(0.0) += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.0.cmp(&b.0))
        });
        ranked
            .into_iter()
            .take(k)
            .filter_map(|(slot, s)| self.entries[slot].as_ref().map(|e| (e.passage.clone(), s)))
            .collect()
    }
}

fn visible(scope: &Scope, tenant: &str) -> bool {
    match scope {
        Scope::Public => true,
        Scope::Tenant(t) => t == tenant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, scope: Scope, text: &str) -> Passage {
        Passage {
            id: id.into(),
            scope,
            title: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn ranks_by_rare_terms_and_respects_scope() {
        let mut idx = Bm25Index::new();
        idx.upsert(p(
            "a",
            Scope::Public,
            "HDFC Top 100 Fund large cap equity scheme",
        ));
        idx.upsert(p(
            "b",
            Scope::Public,
            "SBI Liquid Fund debt scheme overnight liquidity",
        ));
        idx.upsert(p(
            "c",
            Scope::Tenant("t1".into()),
            "Liquid fund factsheet exit load nil",
        ));
        let hits = idx.search("which liquid fund", "t2", 5);
        assert!(
            hits.iter().all(|(p, _)| p.id != "c"),
            "tenant t1's document is invisible to t2"
        );
        assert_eq!(hits[0].0.id, "b");
        let hits = idx.search("liquid exit load", "t1", 5);
        assert_eq!(hits[0].0.id, "c");
        assert_eq!(idx.search("large cap", "t1", 5)[0].0.id, "a");
        assert!(idx.search("banana", "t1", 5).is_empty());
    }

    #[test]
    fn upsert_replaces_and_remove_forgets() {
        let mut idx = Bm25Index::new();
        idx.upsert(p("a", Scope::Public, "alpha fund"));
        idx.upsert(p("a", Scope::Public, "beta fund"));
        assert_eq!(idx.len(), 1);
        assert!(idx.search("alpha", "t", 5).is_empty());
        assert_eq!(idx.search("beta", "t", 5)[0].0.id, "a");
        idx.remove("a");
        assert!(idx.is_empty());
        assert!(idx.search("beta", "t", 5).is_empty());
    }

    #[test]
    fn scheme_codes_are_terms() {
        let mut idx = Bm25Index::new();
        idx.upsert(p(
            "scheme:119551",
            Scope::Public,
            "Scheme code 119551 Axis fund",
        ));
        idx.upsert(p(
            "scheme:120503",
            Scope::Public,
            "Scheme code 120503 Axis fund",
        ));
        assert_eq!(idx.search("about 120503", "t", 1)[0].0.id, "scheme:120503");
    }
}
