//! Excerpts of logs for error messages.

use std::path::Path;

/// The last `count` lines of `text`.
pub(crate) fn last_lines(text: &str, count: usize) -> &str {
    let trimmed = text.trim_end_matches('\n');
    let Some(newlines_to_skip) = count.checked_sub(1) else {
        return "";
    };
    let start = trimmed
        .rmatch_indices('\n')
        .nth(newlines_to_skip)
        .map_or(0, |(newline, _)| newline + 1);
    &trimmed[start..]
}

/// The last `count` lines of the file at `path`, or why it could not be read.
pub(crate) fn file_tail(path: &Path, count: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), count).to_owned(),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_counts_from_the_end_and_ignores_the_final_newline() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(last_lines("", 3), "");
        assert_eq!(last_lines("a\nb", 0), "");
    }
}
