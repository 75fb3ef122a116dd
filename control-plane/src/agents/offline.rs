//! An agent's report of what it did while it could not reach the control plane, checked before it is stored:
//! the stream is the agent's, but nothing on it is trusted to be well formed.

use agent_protocol::OfflineReport;
use chrono::{DateTime, Utc};

use crate::store::{NewOfflineReport, OfflineCorrection};

/// An agent lists at most this many corrections per report (it counts the rest).
pub const MAX_CORRECTIONS: usize = 100;
const MAX_ID_CHARS: usize = 128;
const MAX_FIELD_CHARS: usize = 512;
const MAX_DETAIL_CHARS: usize = 2048;
const ACTIONS: &[&str] = &["recreated", "reverted", "failed"];

/// The report as stored, or what is wrong with it (naming the field).
pub fn check_report(report: OfflineReport) -> Result<NewOfflineReport, String> {
    text("id", &report.id, MAX_ID_CHARS)?;
    if report.id.is_empty() {
        return Err("OfflineReport.id is empty".into());
    }
    let offline_since = time("offline_since_unix", report.offline_since_unix)?;
    let back_at = time("back_unix", report.back_unix)?;
    if back_at < offline_since {
        return Err("OfflineReport.back_unix is before offline_since_unix".into());
    }
    if report.corrections.len() > MAX_CORRECTIONS {
        return Err(format!(
            "OfflineReport lists {} corrections; at most {MAX_CORRECTIONS} (count the rest in corrections_not_listed)",
            report.corrections.len()
        ));
    }
    let corrections = report
        .corrections
        .into_iter()
        .enumerate()
        .map(|(index, correction)| {
            let field = |name: &str| format!("corrections[{index}].{name}");
            for (name, value, limit) in [
                ("api_version", &correction.api_version, MAX_FIELD_CHARS),
                ("kind", &correction.kind, MAX_FIELD_CHARS),
                ("namespace", &correction.namespace, MAX_FIELD_CHARS),
                ("name", &correction.name, MAX_FIELD_CHARS),
                ("detail", &correction.detail, MAX_DETAIL_CHARS),
            ] {
                text(&field(name), value, limit)?;
            }
            if !ACTIONS.contains(&correction.action.as_str()) {
                return Err(format!(
                    "OfflineReport.{} must be one of {ACTIONS:?}",
                    field("action")
                ));
            }
            Ok(OfflineCorrection {
                at: time(&field("at_unix"), correction.at_unix)?,
                api_version: correction.api_version,
                kind: correction.kind,
                namespace: correction.namespace,
                name: correction.name,
                action: correction.action,
                detail: correction.detail,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let count = |name: &str, value: u32| {
        i32::try_from(value).map_err(|_| format!("OfflineReport.{name} is out of range"))
    };
    Ok(NewOfflineReport {
        id: report.id,
        offline_since,
        back_at,
        checks: count("checks", report.checks)?,
        objects: count("objects", report.objects)?,
        corrections,
        corrections_not_listed: count("corrections_not_listed", report.corrections_not_listed)?,
    })
}

fn text(field: &str, value: &str, limit: usize) -> Result<(), String> {
    if value.chars().count() > limit {
        return Err(format!(
            "OfflineReport.{field} is longer than {limit} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("OfflineReport.{field} holds a control character"));
    }
    Ok(())
}

fn time(field: &str, unix: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(unix, 0)
        .filter(|at| at.timestamp() > 0)
        .ok_or_else(|| format!("OfflineReport.{field} is not a valid time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_protocol::Correction;

    fn report() -> OfflineReport {
        OfflineReport {
            id: "agent-1-00ff".into(),
            offline_since_unix: 1_780_000_000,
            back_unix: 1_780_000_060,
            checks: 6,
            objects: 3,
            corrections: vec![Correction {
                at_unix: 1_780_000_030,
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: "default".into(),
                name: "settings".into(),
                action: "reverted".into(),
                detail: "data.mode".into(),
            }],
            corrections_not_listed: 0,
        }
    }

    #[test]
    fn a_well_formed_report_is_stored_as_sent() {
        let stored = check_report(report()).unwrap();
        assert_eq!(stored.id, "agent-1-00ff");
        assert_eq!((stored.back_at - stored.offline_since).num_seconds(), 60);
        assert_eq!(stored.corrections[0].detail, "data.mode");
    }

    #[test]
    fn bad_reports_are_refused_naming_the_field() {
        let mut escape = report();
        escape.corrections[0].name = "a\u{1b}[31mred".into();
        assert!(
            check_report(escape)
                .unwrap_err()
                .contains("corrections[0].name")
        );
        let mut action = report();
        action.corrections[0].action = "rm -rf".into();
        assert!(
            check_report(action)
                .unwrap_err()
                .contains("corrections[0].action")
        );
        let mut backwards = report();
        backwards.back_unix = 1;
        assert!(check_report(backwards).unwrap_err().contains("back_unix"));
        let mut many = report();
        many.corrections = vec![report().corrections[0].clone(); MAX_CORRECTIONS + 1];
        assert!(check_report(many).unwrap_err().contains("at most 100"));
        let mut empty = report();
        empty.id.clear();
        assert!(check_report(empty).unwrap_err().contains("id is empty"));
    }
}
