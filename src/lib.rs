//! postern — a mail transfer agent with Postfix's interface, in one process.
//!
//! The map of the crate, in the order mail flows (see `ARCHITECTURE` in the
//! README for the picture):
//!
//! - [`config`]     parameters: Postfix's names, defaults and syntax, layered with figment
//! - [`supervisor`] the tree that replaces Postfix's `master`: start order, restarts, signals, shutdown, logging
//! - [`smtpd`]      the SMTP server role: sessions, verbs, relay control, limits
//! - [`pickup`]     the pickup role: takes in what the sendmail command leaves in maildrop/
//! - [`cleanup`]    the cleanup role: canonical envelope, header rules, the queue file
//! - [`store`]      spool files plus sled queue state; the only user of sled
//! - [`qmgr`]       the queue manager: incoming to active, per-destination scheduling, retries
//! - [`rewrite`]    trivial-rewrite: canonical addresses, address classes, transport_maps
//! - [`delivery`]   the delivery agents: smtp, discard, error
//! - [`bounce`]     delivery status notifications back to the sender
//! - [`maps`]       lookup tables (`texthash:`, `inline:`)
//! - [`admin`]      the HTTP service for monitoring: /metrics, /healthz, /readyz
//! - [`control`]    the control socket behind `stop`, `status` and the queue views
//! - [`showq`]      queue views shared by commands and metrics (qshape's distribution)
//! - [`proto`]      the SMTP wire format, pure: commands, replies, lines, DATA
//! - [`mail`]       shared types without I/O: queue IDs, addresses, envelopes, log lines
//! - [`cli`]        one module per command (`start`, `postconf`, `postqueue`, ...)

pub mod admin;
pub mod bounce;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod control;
pub mod delivery;
pub mod mail;
pub mod maps;
pub mod metrics;
pub mod pickup;
pub mod proto;
pub mod qmgr;
pub mod rewrite;
pub mod role;
pub mod showq;
pub mod smtpd;
pub mod store;
pub mod supervisor;
pub mod tls;

#[cfg(test)]
mod shape {
    //! The crate's shape: the graph of `crate::` references between the
    //! folders under `src/` has no circle, and the shared layers refer to
    //! no role.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The top-level modules each top-level module refers to.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules: BTreeSet<String> = std::fs::read_dir(&src)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut graph = BTreeMap::new();
        for module in &modules {
            let mut uses = BTreeSet::new();
            let mut stack = vec![src.join(module)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(dir).unwrap().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    for (i, _) in text.match_indices("crate::") {
                        let rest = &text[i + "crate::".len()..];
                        let names: Vec<&str> = match rest.strip_prefix('{') {
                            Some(group) => group
                                .split('}')
                                .next()
                                .unwrap_or("")
                                .split(',')
                                .map(|item| item.trim().split("::").next().unwrap_or(""))
                                .collect(),
                            None => vec![
                                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                    .next()
                                    .unwrap_or(""),
                            ],
                        };
                        for name in names {
                            if name != module && modules.contains(name) {
                                uses.insert(name.to_string());
                            }
                        }
                    }
                }
            }
            graph.insert(module.clone(), uses);
        }
        graph
    }

    /// A circle through `from`, if any.
    fn circle(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|m| m == from) {
            let mut found = path[i..].to_vec();
            found.push(from.to_string());
            return Some(found);
        }
        path.push(from.to_string());
        for next in graph.get(from).into_iter().flatten() {
            if let Some(found) = circle(graph, next, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }

    #[test]
    fn no_module_circle() {
        let graph = graph();
        assert!(graph.len() > 10, "{graph:?}");
        for module in graph.keys() {
            if let Some(found) = circle(&graph, module, &mut Vec::new()) {
                panic!("module circle: {}", found.join(" -> "));
            }
        }
    }

    #[test]
    fn shared_layers_refer_to_no_role() {
        let graph = graph();
        let shared = [
            "mail", "metrics", "role", "config", "proto", "maps", "store", "tls",
        ];
        let above = ["supervisor", "admin", "control", "cli"];
        for (module, uses) in &graph {
            for used in uses {
                if shared.contains(&module.as_str()) {
                    assert!(
                        shared.contains(&used.as_str()),
                        "{module} is a shared layer but refers to {used}"
                    );
                }
                if !above.contains(&module.as_str()) && module != "showq" {
                    assert!(
                        !above.contains(&used.as_str()),
                        "the role {module} refers to {used}, which is above the roles"
                    );
                }
            }
        }
    }
}
