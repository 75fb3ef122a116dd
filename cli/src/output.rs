//! What commands print: a table of chosen columns by default, or the API's own JSON or YAML.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// A table column: its header and where its value is in each object (a JSON pointer such as `/agent/connected`).
pub type Column = (&'static str, &'static str);

/// Prints a list (or one object, as a one-row table).
pub fn print(format: Format, value: &Value, columns: &[Column]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values serialize")
        ),
        Format::Yaml => print!(
            "{}",
            serde_yaml::to_string(value).expect("JSON values serialize to YAML")
        ),
        Format::Table => print!("{}", table(value, columns)),
    }
}

pub fn table(value: &Value, columns: &[Column]) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, pointer)| cell(row.pointer(pointer)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, (header, _))| {
            cells
                .iter()
                .map(|row| row[index].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let line = |texts: Vec<&str>| {
        let padded: Vec<String> = texts
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|(header, _)| *header).collect());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One value as table text: strings as they are (control characters shown escaped, so a name cannot move the
/// terminal's cursor), nothing as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text
            .chars()
            .flat_map(char::escape_debug)
            .collect::<String>(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let clusters = json!([
            {"name": "eu-1", "status": "ready", "agent": {"connected": true}},
            {"name": "lab-east-demos", "status": "provisioning", "agent": {"connected": false, "version": null}},
        ]);
        let text = table(
            &clusters,
            &[
                ("NAME", "/name"),
                ("STATUS", "/status"),
                ("AGENT", "/agent/connected"),
                ("VERSION", "/agent/version"),
            ],
        );
        assert_eq!(
            text,
            "NAME            STATUS        AGENT  VERSION\n\
             eu-1            ready         true   -\n\
             lab-east-demos  provisioning  false  -\n"
        );
    }

    #[test]
    fn control_characters_in_values_are_shown_escaped() {
        let text = table(&json!({"name": "a\u{1b}[2Jb\n"}), &[("NAME", "/name")]);
        assert_eq!(text, "NAME\na\\u{1b}[2Jb\\n\n");
    }
}
