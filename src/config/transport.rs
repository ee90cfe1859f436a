//! Postfix's per-transport parameters (`TRANSPORT_destination_concurrency_limit`
//! and its kin) that postern implements for every transport, built in or
//! declared.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, Settings, postfix, services, values};

/// The per-transport parameters postern implements (for every transport,
/// built in or declared), as `TRANSPORT_SUFFIX`.
const TRANSPORT_PARAMS: &[&str] = &[
    "destination_concurrency_limit",
    "destination_recipient_limit",
    "initial_destination_concurrency",
    "destination_concurrency_failed_cohort_limit",
    "time_limit",
];

pub(super) fn implemented_transport_param(name: &str, services: &services::RawServices) -> bool {
    postfix::transport_param(name, |t| {
        services.contains_key(t) || services::Kind::builtin(t).is_some()
    })
    .is_some_and(|(_, suffix)| TRANSPORT_PARAMS.contains(&suffix))
}

/// The per-transport limits set as `TRANSPORT_SUFFIX`.
pub(super) fn transport_params(
    s: &Settings,
) -> Result<BTreeMap<String, TransportParams>, ConfigError> {
    let mut out: BTreeMap<String, TransportParams> = BTreeMap::new();
    for name in s.explicit_names() {
        if !implemented_transport_param(name, &s.services) {
            continue;
        }
        let Some((transport, suffix)) = postfix::transport_param(name, |_| true) else {
            continue;
        };
        let value = s.expanded(name);
        let bad = |message: String| ConfigError::Value {
            name: name.to_string(),
            message,
        };
        let t = out.entry(transport.to_string()).or_default();
        let number = |v: &str| values::number::<usize>(v).map_err(bad);
        match suffix {
            "destination_concurrency_limit" => {
                t.destination_concurrency_limit = Some(number(&value)?)
            }
            "destination_recipient_limit" => t.destination_recipient_limit = Some(number(&value)?),
            "initial_destination_concurrency" => {
                t.initial_destination_concurrency = Some(number(&value)?)
            }
            "destination_concurrency_failed_cohort_limit" => {
                t.destination_concurrency_failed_cohort_limit =
                    Some(values::number::<u32>(&value).map_err(bad)?)
            }
            "time_limit" => t.time_limit = Some(values::duration(&value).map_err(bad)?),
            _ => {}
        }
        if [
            t.destination_concurrency_limit,
            t.destination_recipient_limit,
            t.initial_destination_concurrency,
        ]
        .contains(&Some(0))
        {
            return Err(bad("must be at least 1".into()));
        }
    }
    Ok(out)
}

/// A transport's own limits, Postfix's `TRANSPORT_SUFFIX` parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportParams {
    pub destination_concurrency_limit: Option<usize>,
    pub destination_recipient_limit: Option<usize>,
    pub initial_destination_concurrency: Option<usize>,
    pub destination_concurrency_failed_cohort_limit: Option<u32>,
    pub time_limit: Option<Duration>,
}
