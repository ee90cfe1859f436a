//! The discard and error agents. discard reports every recipient delivered
//! (`status=sent (TEXT)`, the nexthop being the text); error reports them
//! failed with the nexthop's text, `error:5.1.1 text` or `error:4.x.y text`
//! (a 4.x.y status defers instead of bouncing).

use super::{Report, Request, Status};

pub fn discard(request: &Request) -> Report {
    let text = if request.route.nexthop.is_empty() {
        "discarded".to_string()
    } else {
        request.route.nexthop.clone()
    };
    Report::all(request, Status::Sent, "2.0.0", &text, "none")
}

pub fn error(request: &Request) -> Report {
    let nexthop = request.route.nexthop.trim();
    let (dsn, text) = match nexthop.split_once(' ') {
        Some((code, text)) if is_dsn(code) => (code.to_string(), text.trim().to_string()),
        _ if is_dsn(nexthop) => (nexthop.to_string(), "delivery refused".to_string()),
        _ => (
            "5.0.0".to_string(),
            if nexthop.is_empty() {
                "delivery refused".to_string()
            } else {
                nexthop.to_string()
            },
        ),
    };
    let status = if dsn.starts_with('4') {
        Status::Deferred
    } else {
        Status::Bounced
    };
    Report::all(request, status, &dsn, &text, "none")
}

fn is_dsn(code: &str) -> bool {
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && (parts[0] == "4" || parts[0] == "5")
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
