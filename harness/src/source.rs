//! Where a piece of text came from, and how to point a person at a place in it.
//!
//! Topology and scenario files are TOML; every error that can be tied to a place in one names
//! the file, the line and the column, as a compiler does. This module turns byte spans into
//! those positions and offers close names when a reference is misspelt. Text that came
//! from the network goes through [`printable`] before a person or a log sees it.

use std::fmt;
use std::ops::Range;

/// A named text (a file path, or `built-in:steven-lab`) that spans point into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// How the text is named in messages: a path or `built-in:<name>`.
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl Source {
    /// Wraps a text with the name messages will use for it.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source { name: name.into(), text: text.into() }
    }

    /// The 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        Position { file: self.name.clone(), line, column }
    }

    /// The position of a span's start, if there is a span.
    pub fn locate(&self, span: Option<Range<usize>>) -> Option<Position> {
        span.map(|span| self.position(span.start))
    }
}

/// A place in a named text, shown as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The text's name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Formats an optional position as a `file:line:column: ` prefix for a message.
pub fn prefix(position: &Option<Position>) -> String {
    position.as_ref().map(|p| format!("{p}: ")).unwrap_or_default()
}

/// The known name closest to `wanted`, if it is close enough to be a likely typo.
///
/// Case differences count for little: `tomcat-ecsda` suggests `tomcat-ECDSA`.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_lower = wanted.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&wanted_lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// ` (did you mean 'x'?)`, or nothing when no known name is close.
pub fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(wanted, known).map(|k| format!(" (did you mean '{k}'?)")).unwrap_or_default()
}

/// Adds "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`" and
/// "unknown variant" messages. The names serde lists are the candidates; when it lists none
/// (an untagged or internally tagged enum), `fallback` is (a scenario's step kinds, say).
pub fn with_suggestion(message: &str, fallback: &[&str]) -> String {
    let Some(start) = message.find("unknown field `").or_else(|| message.find("unknown variant `")) else {
        return message.to_string();
    };
    let rest = &message[start..];
    let Some(open) = rest.find('`') else { return message.to_string() };
    let Some(close) = rest[open + 1..].find('`') else { return message.to_string() };
    let wanted = &rest[open + 1..open + 1 + close];
    let expected: Vec<&str> = rest.split('`').skip(3).step_by(2).collect();
    let candidates: Vec<&str> = if expected.is_empty() { fallback.to_vec() } else { expected };
    let suggestion = did_you_mean(wanted, candidates);
    if suggestion.is_empty() {
        return message.to_string();
    }
    let line_end = message[start..].find('\n').map(|i| start + i).unwrap_or(message.len());
    format!("{}{}{}", &message[..line_end], suggestion, &message[line_end..])
}

/// Text from the network, safe to put on one log line or a console: every control character
/// (below 0x20, and 0x7f) is shown as `\xNN` and every non-ASCII character as `\u{NNNN}`, so a
/// newline cannot start a forged line, an escape sequence cannot drive the terminal, and a
/// right-to-left override cannot reorder what a person reads. Backslashes stay as they are:
/// the result is for reading, not for decoding back.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| (' '..='~').contains(&c);
    if text.chars().all(plain) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if plain(c) => shown.push(c),
            c if c.is_ascii() => shown.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => shown.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// `impl Deserialize` for types that parse from a string with `FromStr<Err: Display>`, so a bad
/// value is reported by the TOML reader with its line and column.
#[macro_export]
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let s = Source::new("t.toml", "a = 1\nbb = 2\n");
        assert_eq!(s.position(0).to_string(), "t.toml:1:1");
        assert_eq!(s.position(8).to_string(), "t.toml:2:3");
    }

    #[test]
    fn suggests_a_close_name_whatever_its_case() {
        assert_eq!(closest("tomcat-ecsda", ["tomcat", "tomcat-ECDSA"]), Some("tomcat-ECDSA"));
        assert_eq!(closest("zzzz", ["tomcat", "tomcat-ECDSA"]), None);
    }

    #[test]
    fn unknown_fields_get_a_suggestion_from_the_listed_names() {
        let m = with_suggestion("unknown field `statuss`, expected one of `status`, `failed`", &[]);
        assert!(m.contains("(did you mean 'status'?)"), "{m}");
    }

    #[test]
    fn without_listed_names_the_fallback_is_searched() {
        assert!(with_suggestion("unknown variant `requst`", &["request"]).contains("(did you mean 'request'?)"));
        assert_eq!(with_suggestion("unknown variant `requst`", &[]), "unknown variant `requst`");
    }

    #[test]
    fn printable_shows_control_and_non_ascii_characters_escaped() {
        assert_eq!(printable("cucm.steven.lab:8443/x?y=1"), "cucm.steven.lab:8443/x?y=1");
        assert_eq!(printable("evil\nWARNING: forged"), "evil\\x0aWARNING: forged");
        assert_eq!(printable("a\r\t\u{1b}[2J\u{7f}"), "a\\x0d\\x09\\x1b[2J\\x7f");
        assert_eq!(printable("caf\u{e9} \u{202e}"), "caf\\u{00e9} \\u{202e}");
        assert!(!printable("\u{0}\u{85}\u{2028}").chars().any(|c| c.is_control() || !c.is_ascii()));
    }
}
