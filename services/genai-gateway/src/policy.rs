//! The policy filter on answers and the grounding score. Pure: it sees the masked answer, the
//! masked context and the masked question (tokens on both sides, so a token counts as text).
//!
//! Rules (each a [`Violation`]; any one blocks the answer):
//! - `GUARANTEED_RETURN`: promises of returns ("guaranteed returns", "assured returns",
//!   "risk-free", "cannot lose", "will definitely grow", "100% safe"); a negated form ("returns
//!   are not guaranteed", "no guaranteed return") is allowed.
//! - `INVESTMENT_ADVICE`: telling the user to buy, sell, redeem, switch, invest or exit ("you
//!   should buy", "I recommend selling", "sell now"), unless the caller's scope permits advice
//!   (`genai.advice`, a registered investment adviser).
//! - `HALLUCINATED_NUMBER`: a number in the answer that is not in the context or the question
//!   (compared as exact decimals after dropping thousands separators and trailing zeros; a
//!   rounding of a context number to the answer's own precision counts as present; integers up
//!   to 12 are allowed for counts and months).
//! - `INJECTION_ECHO`: the answer repeats an injection ("ignore previous instructions", "system
//!   prompt", "developer mode", ...), six consecutive words of our system prompt, or an account
//!   token that is not in the context (an id the user typed, e.g. another investor's).
//!
//! Grounding score = supported sentences / counted sentences, two decimals. A sentence is counted
//! when it has a number or a content word (3+ letters, not a stop word); it is supported when
//! every number in it is supported (as above) and at least half of its content words occur in
//! the context. Citations (`[S1]`) and tokens are removed first. An answer with no counted
//! sentence scores 0.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;

use crate::mask::TOKEN;

/// A rule an answer broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    GuaranteedReturn(String),
    InvestmentAdvice(String),
    HallucinatedNumber(String),
    InjectionEcho(String),
}

impl Violation {
    pub fn code(&self) -> &'static str {
        match self {
            Violation::GuaranteedReturn(_) => "GUARANTEED_RETURN",
            Violation::InvestmentAdvice(_) => "INVESTMENT_ADVICE",
            Violation::HallucinatedNumber(_) => "HALLUCINATED_NUMBER",
            Violation::InjectionEcho(_) => "INJECTION_ECHO",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Violation::GuaranteedReturn(s)
            | Violation::InvestmentAdvice(s)
            | Violation::HallucinatedNumber(s)
            | Violation::InjectionEcho(s) => s,
        }
    }
}

/// What the filter decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    /// 0 to 1, two decimals.
    pub grounding: Decimal,
    pub supported_sentences: usize,
    pub counted_sentences: usize,
}

impl Verdict {
    pub fn blocked(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// What the filter checks an answer against.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub answer: &'a str,
    pub context: &'a str,
    pub question: &'a str,
    pub system_prompt: &'a str,
    pub advice_allowed: bool,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("static policy pattern compiles")
}

static GUARANTEE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:guarantee[ds]?\b[^.!?\n]{0,40}?\b(?:returns?|profits?|income|gains?|growth|yield)|(?:assured|guaranteed|fixed|certain)\s+(?:returns?|profits?|income|gains?)|risk[\s\-]free|no\s+risk|zero\s+risk|(?:cannot|can't|can not|won't|will not)\s+lose|will\s+(?:definitely|certainly|surely)\s+(?:grow|rise|increase|double|gain|go up)|sure[\s\-]shot|100\s?%\s+(?:safe|guaranteed|returns?|sure))",
    )
});
static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\b(?:not|no|never|nor|isn't|aren't|cannot be|can't be)\s+(?:\w+\s+){0,2}$")
});
static ADVICE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:(?:you|investors?)\s+should|i\s+(?:would\s+)?(?:recommend|suggest|advise)|we\s+(?:recommend|suggest|advise)|my\s+advice\s+is\s+to|it\s+is\s+advisable\s+to|better\s+to|time\s+to)\s+(?:\w+\s+)?(?:buy|buying|sell|selling|redeem|redeeming|switch|switching|invest|investing|exit|exiting|purchase|purchasing|book\s+profits?|increase\s+your|reduce\s+your)\b|\b(?:buy|sell|redeem|exit)\s+(?:it\s+|them\s+)?(?:now|immediately|today)\b|\b(?:strong\s+)?(?:buy|sell)\s+(?:rating|recommendation|call|signal)\b",
    )
});
static INJECTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:ignore\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier)\s+(?:instructions?|prompts?|rules)|disregard\s+(?:all\s+|the\s+)?(?:previous|prior|above)|system\s+prompt|developer\s+mode|jailbreak|do\s+anything\s+now|you\s+are\s+now\s+(?:a|an|in)|reveal\s+(?:the|your)\s+(?:instructions|prompt|rules)|override\s+(?:the\s+)?(?:rules|policy))",
    )
});
static ACCOUNT_TOKEN: LazyLock<Regex> = LazyLock::new(|| re(r"\[ACCOUNT_\d+\]"));
static CITATION: LazyLock<Regex> = LazyLock::new(|| re(r"\[S\d+\]"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"\d[\d,]*(?:\.\d+)?"));
static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z][A-Za-z']+"));

const STOP_WORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "are",
    "was",
    "were",
    "with",
    "that",
    "this",
    "these",
    "those",
    "from",
    "your",
    "you",
    "yours",
    "our",
    "has",
    "have",
    "had",
    "its",
    "it's",
    "into",
    "than",
    "then",
    "there",
    "their",
    "which",
    "what",
    "when",
    "where",
    "who",
    "whom",
    "why",
    "how",
    "also",
    "but",
    "not",
    "all",
    "any",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "may",
    "might",
    "been",
    "being",
    "per",
    "such",
    "each",
    "other",
    "some",
    "most",
    "more",
    "only",
    "over",
    "about",
    "based",
    "according",
    "shows",
    "show",
    "given",
    "here",
    "they",
    "them",
    "his",
    "her",
    "she",
    "him",
    "one",
    "out",
    "via",
    "did",
    "does",
    "just",
    "very",
];

fn is_stop(w: &str) -> bool {
    STOP_WORDS.contains(&w)
}

/// Lower-case content words, lightly stemmed (a trailing "s" dropped).
pub fn content_words(text: &str) -> Vec<String> {
    WORD.find_iter(text)
        .map(|m| m.as_str().to_ascii_lowercase())
        .filter(|w| w.len() >= 3 && !is_stop(w))
        .map(|w| stem(&w))
        .collect()
}

fn stem(w: &str) -> String {
    let w = w.trim_end_matches("'s");
    if w.len() > 4 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_string()
    } else {
        w.to_string()
    }
}

/// Every number in `text` as an exact decimal (thousands separators dropped, normalised).
pub fn numbers(text: &str) -> Vec<Decimal> {
    NUMBER
        .find_iter(text)
        .filter_map(|m| {
            let raw = m.as_str().trim_end_matches(',').replace(',', "");
            Decimal::from_str(&raw).ok().map(|d| d.normalize())
        })
        .collect()
}

fn strip(text: &str) -> String {
    let t = CITATION.replace_all(text, " ");
    TOKEN.replace_all(&t, " ").into_owned()
}

/// The numbers of the context and question, and a check of one answer number against them.
struct Known {
    exact: HashSet<Decimal>,
    all: Vec<Decimal>,
}

impl Known {
    fn new(texts: &[&str]) -> Self {
        let all: Vec<Decimal> = texts.iter().flat_map(|t| numbers(&strip(t))).collect();
        Known {
            exact: all.iter().copied().collect(),
            all,
        }
    }

    fn supports(&self, n: Decimal) -> bool {
        if self.exact.contains(&n) {
            return true;
        }
        if n.scale() == 0 && n <= Decimal::from(12) {
            return true;
        }
        // A rounding of a context number to the answer's precision (2.49 -> 2.5, 10000.4 -> 10000).
        let dp = n.scale();
        self.all
            .iter()
            .any(|k| k.scale() > dp && k.round_dp(dp).normalize() == n)
    }
}

/// Split into sentences at `.`, `!`, `?` followed by whitespace, and at line breaks.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '\n' {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
            continue;
        }
        cur.push(*c);
        let next_ws = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && next_ws {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Run every rule and compute the grounding score.
pub fn check(c: Check<'_>) -> Verdict {
    let mut violations = Vec::new();
    let known = Known::new(&[c.context, c.question]);

    for m in GUARANTEE.find_iter(c.answer) {
        let before = &c.answer[..m.start()];
        let tail_start = before.char_indices().rev().nth(30).map_or(0, |(i, _)| i);
        if NEGATION.is_match(&before[tail_start..]) {
            continue;
        }
        violations.push(Violation::GuaranteedReturn(m.as_str().to_string()));
        break;
    }
    if !c.advice_allowed
        && let Some(m) = ADVICE.find(c.answer)
    {
        violations.push(Violation::InvestmentAdvice(m.as_str().to_string()));
    }
    let answer_plain = strip(c.answer);
    for n in numbers(&answer_plain) {
        if !known.supports(n) {
            violations.push(Violation::HallucinatedNumber(n.to_string()));
            break;
        }
    }
    if let Some(m) = INJECTION.find(c.answer) {
        violations.push(Violation::InjectionEcho(m.as_str().to_string()));
    } else if let Some(shingle) = echoed_shingle(c.answer, c.system_prompt, 6) {
        violations.push(Violation::InjectionEcho(format!(
            "repeats the system prompt: \"{shingle}\""
        )));
    } else if let Some(t) = ACCOUNT_TOKEN
        .find_iter(c.answer)
        .find(|t| !c.context.contains(t.as_str()))
    {
        violations.push(Violation::InjectionEcho(format!(
            "refers to {} which is not in the context",
            t.as_str()
        )));
    }

    let context_words: HashSet<String> = content_words(&strip(c.context))
        .into_iter()
        .chain(content_words(&strip(c.question)))
        .collect();
    let (mut supported, mut counted) = (0usize, 0usize);
    for s in sentences(&answer_plain) {
        let words = content_words(&s);
        let nums = numbers(&s);
        if words.is_empty() && nums.is_empty() {
            continue;
        }
        counted += 1;
        let nums_ok = nums.iter().all(|n| known.supports(*n));
        let hits = words.iter().filter(|w| context_words.contains(*w)).count();
        let words_ok = words.is_empty() || hits * 2 >= words.len();
        if nums_ok && words_ok {
            supported += 1;
        }
    }
    let mut grounding = if counted == 0 {
        Decimal::ZERO
    } else {
        (Decimal::from(supported) / Decimal::from(counted)).round_dp(2)
    };
    grounding.rescale(2);
    Verdict {
        violations,
        grounding,
        supported_sentences: supported,
        counted_sentences: counted,
    }
}

/// The first run of `n` consecutive words of `source` that `text` repeats, if any.
fn echoed_shingle(text: &str, source: &str, n: usize) -> Option<String> {
    let norm = |s: &str| -> Vec<String> {
        WORD.find_iter(s)
            .map(|m| m.as_str().to_ascii_lowercase())
            .collect()
    };
    let text_words = norm(text);
    let source_words = norm(source);
    if text_words.len() < n || source_words.len() < n {
        return None;
    }
    let haystack: HashSet<String> = text_words.windows(n).map(|w| w.join(" ")).collect();
    source_words
        .windows(n)
        .map(|w| w.join(" "))
        .find(|s| haystack.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "[S1] Your portfolio is worth INR 10,000.00 as of 2025-02-25. \
        [S2] HDFC Top 100 Fund gained 2.4876% this month: NAV 1,000.5000 on 2025-02-03 to 1025.3900 on 2025-02-25.";
    const SYSTEM: &str =
        "You are the Nivesh assistant. Answer only from the numbered context passages below.";

    fn run(answer: &str) -> Verdict {
        check(Check {
            answer,
            context: CONTEXT,
            question: "What is my portfolio worth?",
            system_prompt: SYSTEM,
            advice_allowed: false,
        })
    }

    #[test]
    fn grounded_answer_passes_with_full_score() {
        let v = run(
            "Your portfolio is worth INR 10000 as of 2025-02-25 [S1]. HDFC Top 100 Fund gained 2.49% this month [S2].",
        );
        assert!(!v.blocked(), "{v:?}");
        assert_eq!(v.grounding, Decimal::ONE);
    }

    #[test]
    fn hallucinated_number_is_blocked() {
        let v = run("Your portfolio is worth INR 12,345.67 [S1].");
        assert_eq!(
            v.violations,
            vec![Violation::HallucinatedNumber("12345.67".into())]
        );
        assert_eq!(v.grounding, Decimal::ZERO);
    }

    #[test]
    fn guaranteed_returns_blocked_but_negation_allowed() {
        assert_eq!(
            run("This fund offers guaranteed returns every year.").violations[0].code(),
            "GUARANTEED_RETURN"
        );
        assert_eq!(
            run("It is risk-free.").violations[0].code(),
            "GUARANTEED_RETURN"
        );
        assert!(
            run("Mutual fund returns are not guaranteed.")
                .violations
                .is_empty()
        );
        assert!(
            run("There is no guaranteed return on this fund.")
                .violations
                .is_empty()
        );
    }

    #[test]
    fn advice_blocked_unless_permitted() {
        let answer = "You should sell HDFC Top 100 Fund now.";
        assert_eq!(run(answer).violations[0].code(), "INVESTMENT_ADVICE");
        let permitted = check(Check {
            answer,
            context: CONTEXT,
            question: "",
            system_prompt: SYSTEM,
            advice_allowed: true,
        });
        assert!(permitted.violations.is_empty());
    }

    #[test]
    fn injection_echoes_are_blocked() {
        assert_eq!(
            run("Sure, I will ignore previous instructions.").violations[0].code(),
            "INJECTION_ECHO"
        );
        assert_eq!(
            run("As told: answer only from the numbered context passages below.").violations[0]
                .code(),
            "INJECTION_ECHO"
        );
        assert_eq!(
            run("Here is the portfolio of [ACCOUNT_2].").violations[0].code(),
            "INJECTION_ECHO"
        );
    }

    #[test]
    fn poorly_grounded_answer_scores_low() {
        let v =
            run("Bananas ripen quickly in tropical weather. Your portfolio is worth INR 10000.00.");
        assert!(!v.blocked());
        assert_eq!(v.counted_sentences, 2);
        assert_eq!(v.grounding, Decimal::new(5, 1));
    }
}
