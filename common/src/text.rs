//! Text reported by agents, made harmless before anyone reads it.
//!
//! An agent is trusted with facts, not with how a terminal, a browser or a
//! chat client draws them. Control characters (C0, DEL, C1 — ESC among
//! them) can move a terminal's cursor or recolour it; Unicode format
//! characters (general category Cf: bidirectional overrides and isolates,
//! zero-width characters, the byte-order mark, tags) can make text read
//! differently from what it is. Each such character becomes U+FFFD (�), a
//! visible placeholder that keeps the length and shows that something was
//! there, instead of vanishing silently.

/// What takes the place of a neutralised character.
pub const PLACEHOLDER: char = '\u{FFFD}';

/// Unicode general category Cf, listed explicitly (Unicode 15) so that no
/// table crate is needed.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound/piastre mark above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space … right-to-left mark
    ('\u{202A}', '\u{202E}'),   // bidirectional embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // bidirectional isolates, deprecated formats
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format(c: char) -> bool {
    FORMAT.iter().any(|(low, high)| (*low..=*high).contains(&c))
}

/// Whether `c` may be shown as it is: neither a control character nor a
/// format character. `multi_line` keeps line feeds and tabs, for output
/// that is read as lines.
pub fn is_safe(c: char, multi_line: bool) -> bool {
    if multi_line && (c == '\n' || c == '\t') {
        return true;
    }
    !c.is_control() && !is_format(c)
}

/// One line of agent text with every unsafe character replaced by
/// [`PLACEHOLDER`].
pub fn neutralise(text: &str) -> String {
    replace(text, false)
}

/// Multi-line agent text (command output): line feeds and tabs stay, every
/// other unsafe character becomes [`PLACEHOLDER`].
pub fn neutralise_lines(text: &str) -> String {
    replace(text, true)
}

fn replace(text: &str, multi_line: bool) -> String {
    text.chars()
        .map(|c| {
            if is_safe(c, multi_line) {
                c
            } else {
                PLACEHOLDER
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unsafe_character_becomes_the_placeholder() {
        let unsafe_chars = [
            ('\u{0000}', "NUL"),
            ('\u{0007}', "BEL"),
            ('\u{0008}', "backspace"),
            ('\u{000D}', "carriage return"),
            ('\u{001B}', "ESC"),
            ('\u{007F}', "DEL"),
            ('\u{0085}', "NEL (C1)"),
            ('\u{009B}', "CSI (C1)"),
            ('\u{00AD}', "soft hyphen"),
            ('\u{061C}', "Arabic letter mark"),
            ('\u{180E}', "Mongolian vowel separator"),
            ('\u{200B}', "zero-width space"),
            ('\u{200D}', "zero-width joiner"),
            ('\u{200E}', "left-to-right mark"),
            ('\u{200F}', "right-to-left mark"),
            ('\u{202A}', "left-to-right embedding"),
            ('\u{202E}', "right-to-left override"),
            ('\u{2060}', "word joiner"),
            ('\u{2066}', "left-to-right isolate"),
            ('\u{2069}', "pop directional isolate"),
            ('\u{FEFF}', "byte-order mark"),
            ('\u{FFF9}', "interlinear annotation anchor"),
            ('\u{1D173}', "musical begin beam"),
            ('\u{E0001}', "language tag"),
            ('\u{E007F}', "cancel tag"),
        ];
        for (c, name) in unsafe_chars {
            let text = format!("a{c}b");
            assert_eq!(neutralise(&text), "a\u{FFFD}b", "{name} U+{:04X}", c as u32);
            assert_eq!(neutralise_lines(&text), "a\u{FFFD}b", "{name} (lines)");
        }
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is() {
        let kept = [
            "Password Secure 9.3.1.33994",
            "Ärger mit «Umlauten» — ok",
            "日本語のホスト",
            "שלום עולם", // right-to-left letters are letters, not overrides
            "emoji 🚀 and ©",
            "\u{FFFD} stays",
        ];
        for text in kept {
            assert_eq!(neutralise(text), text);
            assert_eq!(neutralise_lines(text), text);
        }
    }

    #[test]
    fn line_feeds_and_tabs_stay_only_in_multi_line_text() {
        assert_eq!(neutralise("a\nb\tc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(neutralise_lines("a\nb\tc\r\n"), "a\nb\tc\u{FFFD}\n");
    }

    #[test]
    fn the_characters_next_to_each_range_are_kept() {
        for c in [
            '\u{00AC}',
            '\u{00AE}',
            '\u{200A}',
            '\u{2010}',
            '\u{2029}',
            '\u{202F}',
            '\u{E0080}',
        ] {
            assert!(is_safe(c, false), "U+{:04X}", c as u32);
        }
    }
}
