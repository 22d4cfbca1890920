//! The message templates, as data: one entry per kind of message, each with a subject, an
//! email body and a short text (SMS and push), written with named placeholders.
//!
//! Syntax, deliberately tiny:
//! - `{name}`: the value of `name`; rendering fails if it is missing (a template that names a
//!   value the composer does not provide is a bug, caught by the unit tests).
//! - `{?name}...{/name}`: the enclosed text only when `name` has a value (SIP instalment number,
//!   the refund of a failed order, the amount of a purchase vs the units of a redemption).
//!
//! Values are preformatted by [`crate::compose`] (rupees, units, NAV, IST dates), so templates
//! hold wording only and the figures are exactly the event's.

use std::collections::BTreeMap;

/// One kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Stable name, stored with every notification (`units_allotted`).
    pub id: &'static str,
    pub subject: &'static str,
    /// Plain-text email body.
    pub email: &'static str,
    /// One SMS-sized line, also the push text.
    pub short: &'static str,
}

/// A template rendered with one event's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub template: &'static str,
    pub subject: String,
    pub email: String,
    pub short: String,
}

/// The values a template is rendered with: name → display text.
pub type Vars = BTreeMap<&'static str, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {template}: no value for placeholder {{{name}}}")]
    Missing {
        template: &'static str,
        name: String,
    },
    #[error("template {template}: malformed at byte {at}: {what}")]
    Malformed {
        template: &'static str,
        at: usize,
        what: &'static str,
    },
    #[error("no template named {0}")]
    Unknown(String),
}

/// Email lines are wrapped to this many bytes: plain-text mail convention, and below the
/// 76 that lets the body travel as readable 8bit instead of quoted-printable.
pub const EMAIL_WIDTH: usize = 72;

const SIGN_OFF: &str = "\n\nRegards,\nTeam Nivesh\n";

/// Every message the service sends.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "order_received",
        subject: "Order received: {kind} in {scheme}",
        email: "Dear {name},\n\n\
            We have received your {kind} order for {scheme}.\n\n\
            {?amount}Amount: {amount}\n{/amount}\
            {?units}Units: {units}\n{/units}\
            {?all_units}Units: all units held\n{/all_units}\
            {?target_scheme}Switch into: {target_scheme}\n{/target_scheme}\
            {?instalment}SIP instalment: #{instalment}\n{/instalment}\
            Order id: {order_id}\n\
            Placed at: {placed_at}\n\n\
            Your order is priced at the NAV applicable to it under the cut-off rules; we will \
            write again once it is processed.",
        short: "Nivesh: {kind} order received for {scheme}\
            {?amount}, {amount}{/amount}{?units}, {units} units{/units}\
            {?all_units}, all units{/all_units}. Ref {order_ref}.",
    },
    Template {
        id: "payment_failed",
        subject: "Payment failed for your order in {scheme}",
        email: "Dear {name},\n\n\
            Your payment for an order did not go through.\n\n\
            Scheme: {scheme}\n\
            Amount: {amount}\n\
            Reason: {reason}\n\
            Order id: {order_id}\n\n\
            No units will be allotted for this order. If the amount was debited from your \
            account, it will be refunded.",
        short: "Nivesh: payment of {amount} for {scheme} failed: {reason}. Ref {order_ref}.",
    },
    Template {
        id: "units_allotted",
        subject: "Units allotted: {units} units of {scheme}",
        email: "Dear {name},\n\n\
            {?instalment}Your SIP instalment #{instalment} has been processed.\n{/instalment}\
            Units have been allotted to your folio {folio}.\n\n\
            Scheme: {scheme}\n\
            NAV: {nav} (NAV date {nav_date})\n\
            Amount: {amount}\n\
            Stamp duty: {stamp_duty}\n\
            Amount invested: {net_amount}\n\
            Units allotted: {units}\n\
            Balance units: {balance_units}\n\
            {?instalment}SIP instalment: #{instalment}\n{/instalment}\
            Order id: {order_id}\n\
            Transaction id: {transaction_id}\n\
            Allotted at: {allotted_at}",
        short: "Nivesh: {units} units of {scheme} allotted at NAV {nav} ({nav_date}) for \
            {amount}{?instalment}, SIP instalment #{instalment}{/instalment}. \
            Balance {balance_units} units.",
    },
    Template {
        id: "redemption_paid",
        subject: "Redemption processed: {net_amount} from {scheme}",
        email: "Dear {name},\n\n\
            Your redemption from folio {folio} has been processed.\n\n\
            Scheme: {scheme}\n\
            Units redeemed: {units}\n\
            NAV: {nav} (NAV date {nav_date})\n\
            Gross amount: {amount}\n\
            Exit load: {exit_load}\n\
            Net amount: {net_amount}\n\
            Expected credit to your bank account by: {expected_credit}\n\
            Balance units: {balance_units}\n\
            Order id: {order_id}\n\
            Transaction id: {transaction_id}",
        short: "Nivesh: redeemed {units} units of {scheme} at NAV {nav} ({nav_date}). \
            Net {net_amount} after exit load {exit_load}; credit by {expected_credit}.",
    },
    Template {
        id: "switch_out",
        subject: "Switch: {units} units redeemed from {scheme}",
        email: "Dear {name},\n\n\
            The first leg of your switch has been processed: units were redeemed.\n\n\
            Scheme: {scheme}\n\
            {?target_scheme}Switching into: {target_scheme}\n{/target_scheme}\
            Units redeemed: {units}\n\
            NAV: {nav} (NAV date {nav_date})\n\
            Gross amount: {amount}\n\
            Exit load: {exit_load}\n\
            Amount switched: {net_amount}\n\
            Balance units: {balance_units}\n\
            Order id: {order_id}\n\
            Transaction id: {transaction_id}",
        short: "Nivesh: switch out of {scheme}: {units} units at NAV {nav} ({nav_date}), \
            {net_amount} after exit load {exit_load}.",
    },
    Template {
        id: "switch_in",
        subject: "Switch: {units} units allotted in {scheme}",
        email: "Dear {name},\n\n\
            Your switch is complete: units have been allotted in {scheme}, folio {folio}.\n\n\
            Amount switched in: {amount}\n\
            Stamp duty: {stamp_duty}\n\
            NAV: {nav} (NAV date {nav_date})\n\
            Units allotted: {units}\n\
            Balance units: {balance_units}\n\
            Order id: {order_id}\n\
            Transaction id: {transaction_id}",
        short: "Nivesh: switch into {scheme}: {units} units allotted at NAV {nav} \
            ({nav_date}) for {amount}. Balance {balance_units} units.",
    },
    Template {
        id: "order_failed",
        subject: "Your order in {scheme} could not be completed",
        email: "Dear {name},\n\n\
            Your {kind} order in {scheme} could not be completed.\n\n\
            Reason: {reason}\n\
            Order id: {order_id}\n\
            {?refund}\nA refund of {refund} will be credited to your bank account.\n{/refund}",
        short: "Nivesh: your {kind} order in {scheme} failed: {reason}.\
            {?refund} {refund} will be refunded.{/refund} Ref {order_ref}.",
    },
    Template {
        id: "refund_issued",
        subject: "Refund of {amount} issued",
        email: "Dear {name},\n\n\
            We have issued a refund of {amount} to your bank account for your order in \
            {scheme}.\n\n\
            Reason: {reason}\n\
            Refund id: {refund_id}\n\
            Order id: {order_id}\n\
            Refunded at: {refunded_at}",
        short: "Nivesh: refund of {amount} issued for your order in {scheme}. \
            Refund id {refund_id}.",
    },
];

/// The template named `id`.
pub fn template(id: &str) -> Result<&'static Template, TemplateError> {
    TEMPLATES
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| TemplateError::Unknown(id.to_string()))
}

/// Render every part of template `id` with `vars`.
pub fn render(id: &str, vars: &Vars) -> Result<Rendered, TemplateError> {
    let t = template(id)?;
    let mut email = wrap(&render_text(t.id, t.email, vars)?, EMAIL_WIDTH);
    email.push_str(SIGN_OFF);
    Ok(Rendered {
        template: t.id,
        subject: render_text(t.id, t.subject, vars)?,
        email,
        short: render_text(t.id, t.short, vars)?,
    })
}

/// Render one text. Public to the crate for tests of the syntax itself.
pub(crate) fn render_text(
    template: &'static str,
    text: &str,
    vars: &Vars,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len() + 64);
    render_into(template, text, 0, vars, &mut out)?;
    Ok(out)
}

fn render_into(
    template: &'static str,
    text: &str,
    base: usize,
    vars: &Vars,
    out: &mut String,
) -> Result<(), TemplateError> {
    let malformed = |at: usize, what: &'static str| TemplateError::Malformed {
        template,
        at: base + at,
        what,
    };
    let mut rest = text;
    let mut pos = 0;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| malformed(pos + open, "unclosed '{'"))?;
        let tag = &after[..close];
        let tag_end = open + 1 + close + 1;
        if let Some(name) = tag.strip_prefix('?') {
            check_name(name).map_err(|w| malformed(pos + open, w))?;
            let end_tag = format!("{{/{name}}}");
            let body_start = tag_end;
            let body_len = rest[body_start..]
                .find(&end_tag)
                .ok_or_else(|| malformed(pos + open, "section without its {/name}"))?;
            let body = &rest[body_start..body_start + body_len];
            if vars.get(name).is_some_and(|v| !v.is_empty()) {
                render_into(template, body, base + pos + body_start, vars, out)?;
            }
            let consumed = body_start + body_len + end_tag.len();
            rest = &rest[consumed..];
            pos += consumed;
        } else if tag.starts_with('/') {
            return Err(malformed(pos + open, "end of a section that is not open"));
        } else {
            check_name(tag).map_err(|w| malformed(pos + open, w))?;
            let value = vars.get(tag).ok_or_else(|| TemplateError::Missing {
                template,
                name: tag.to_string(),
            })?;
            out.push_str(value);
            rest = &rest[tag_end..];
            pos += tag_end;
        }
    }
    out.push_str(rest);
    Ok(())
}

/// Wrap every line longer than `width` bytes at spaces (a word longer than the width stays
/// whole on its own line).
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut len = 0;
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                if len > 0 && len + 1 + word.len() > width {
                    out.push('\n');
                    len = 0;
                } else {
                    out.push(' ');
                    len += 1;
                }
            }
            out.push_str(word);
            len += word.len();
        }
    }
    out
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err("placeholder names are [a-z0-9_]+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    /// Placeholders are replaced; a section appears only when its value is present.
    #[test]
    fn placeholders_and_sections() {
        let v = vars(&[("a", "1"), ("b", "two")]);
        assert_eq!(render_text("t", "x{a}y{b}", &v).unwrap(), "x1ytwo");
        assert_eq!(
            render_text("t", "[{?b}b={b}{/b}][{?c}c={c}{/c}]", &v).unwrap(),
            "[b=two][]"
        );
        // Nested sections of different names.
        assert_eq!(
            render_text("t", "{?a}A{?c}C{/c}{?b}B{/b}{/a}", &v).unwrap(),
            "AB"
        );
        // An empty value counts as absent for a section.
        let empty = vars(&[("c", "")]);
        assert_eq!(render_text("t", "{?c}x{/c}y", &empty).unwrap(), "y");
    }

    /// A missing value or broken syntax is an error, never silently dropped text.
    #[test]
    fn errors() {
        let v = vars(&[("a", "1")]);
        assert_eq!(
            render_text("t", "{a} {zz}", &v),
            Err(TemplateError::Missing {
                template: "t",
                name: "zz".into()
            })
        );
        assert!(matches!(
            render_text("t", "{a", &v),
            Err(TemplateError::Malformed { .. })
        ));
        assert!(matches!(
            render_text("t", "{?a}open", &v),
            Err(TemplateError::Malformed { .. })
        ));
        assert!(matches!(
            render_text("t", "{/a}", &v),
            Err(TemplateError::Malformed { .. })
        ));
        assert!(matches!(
            render_text("t", "{Bad Name}", &v),
            Err(TemplateError::Malformed { .. })
        ));
        assert!(matches!(render("nope", &v), Err(TemplateError::Unknown(_))));
    }

    /// Long lines wrap at spaces within the width; short lines and line breaks are kept.
    #[test]
    fn wrapping() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("short\n\nlines stay", 72), "short\n\nlines stay");
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            "averyveryverylongword\nx"
        );
        let long = "word ".repeat(40);
        assert!(wrap(&long, 72).lines().all(|l| l.len() <= 72));
    }

    /// Template ids are unique.
    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
