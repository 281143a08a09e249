//! Conversions between `chrono` times and `google.protobuf.Timestamp`.

use chrono::{DateTime, TimeZone, Utc};

/// A UTC time as a protobuf timestamp.
pub fn to_proto(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// An optional UTC time as an optional protobuf timestamp.
pub fn to_proto_opt(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(to_proto)
}

/// A protobuf timestamp as a UTC time (`None` if out of range).
pub fn from_proto(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(ts.seconds, u32::try_from(ts.nanos).ok()?)
        .single()
}

/// A half-open time range `[from, to)`; `None` ends are open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A half-open time range `[from, to)` from optional proto timestamps, validated.
pub fn range_from_proto(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> Result<Range, crate::FieldViolation> {
    let parse = |field: &str, ts: Option<&prost_types::Timestamp>| match ts {
        None => Ok(None),
        Some(ts) => from_proto(ts)
            .map(Some)
            .ok_or_else(|| crate::FieldViolation::new(field, "is not a valid timestamp")),
    };
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(crate::FieldViolation::new("to", "must be after from"));
    }
    Ok((from, to))
}

/// Permission to record money movements at a past time (imports, demo data). Only service
/// tokens minted for those tools carry it; no role grants it.
pub const SALDO_BACKDATE: &str = "saldo.backdate";

/// The `effective_at` of a create request: `None` (now) when absent; otherwise the caller must
/// hold [`SALDO_BACKDATE`] and the time must lie within the last five years, not in the future.
pub fn effective_at(
    caller: &crate::auth::Principal,
    ts: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, crate::error::BackdateError> {
    let Some(ts) = ts else {
        return Ok(None);
    };
    caller.require(SALDO_BACKDATE)?;
    let at = from_proto(ts)
        .ok_or_else(|| crate::FieldViolation::new("effective_at", "is not a valid timestamp"))?;
    let now = Utc::now();
    if at > now || at < now - chrono::Duration::days(5 * 366) {
        return Err(crate::FieldViolation::new(
            "effective_at",
            "must lie within the last five years and not in the future",
        )
        .into());
    }
    Ok(Some(at))
}
