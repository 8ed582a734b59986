//! Plain aligned text tables for terminal output.

/// Text from agents, made safe for a terminal: control characters (which
/// could move the cursor or recolour the screen) and format characters
/// (which could reorder what is read) become U+FFFD, the same rule the
/// controller applies where agent text comes in.
pub fn printable(text: &str) -> String {
    tierwise_common::text::neutralise(text)
}

/// Renders rows under a header with two spaces between columns. The last
/// column is not padded, so lines carry no trailing blanks.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| printable(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn aligns_columns() {
        let text = render(
            &["HOST", "STATUS"],
            &[
                vec!["srv-01".into(), "online".into()],
                vec!["a".into(), "offline".into()],
            ],
        );
        assert_eq!(text, "HOST    STATUS\nsrv-01  online\na       offline\n");
    }

    #[test]
    fn control_and_format_characters_never_reach_the_terminal() {
        let text = render(&["OS"], &[vec!["Win\u{1b}[2J \u{202e}dows\n".into()]]);
        assert_eq!(text, "OS\nWin\u{fffd}[2J \u{fffd}dows\u{fffd}\n");
    }
}
