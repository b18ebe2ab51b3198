//! Device text made safe to show: everything a device sends is hostile input, and a string that
//! reaches an operator's terminal, a log or an audit row must not carry control sequences (an
//! ESC can clear the screen, rewrite earlier lines or retitle the window; a bidi override can
//! make a line read differently from its bytes).
//!
//! [`device_text`] is the one function every device-derived string goes through before output.
//! JSON output needs no extra step (serde_json escapes control characters itself), but audit rows
//! and table cells are plain text and do.

use std::fmt::Write as _;

/// Longest device text kept (characters); the rest is replaced by `…`. Device strings are short
/// (a CN, a log line, an error detail), and an unbounded one must not flood a terminal or a row.
pub const MAX_DEVICE_TEXT: usize = 256;

/// `s` with every control character (C0, DEL, C1), bidirectional override or isolate, and
/// other invisible format character written as a `\u{…}` escape (backslashes doubled so an
/// escape in the output always means an escaped character), cut to [`MAX_DEVICE_TEXT`]
/// characters.
pub fn device_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_DEVICE_TEXT));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_DEVICE_TEXT {
            out.push('…');
            break;
        }
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Device bytes as text: invalid UTF-8 becomes U+FFFD, then [`device_text`].
pub fn device_bytes(b: &[u8]) -> String {
    device_text(&String::from_utf8_lossy(b))
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidi embeddings, overrides and isolates; marks; zero-width and line separators.
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escape_sequences_are_written_out_not_passed_on() {
        // ECMA-48: ESC [ 2 J clears the screen; OSC 0 ; … BEL sets the window title.
        let hostile = "ok\x1b[2J\x1b]0;owned\x07\r\n\u{9b}31m";
        let shown = device_text(hostile);
        assert_eq!(
            shown,
            "ok\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{d}\\u{a}\\u{9b}31m"
        );
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn bidi_overrides_and_backslashes_are_escaped_and_plain_text_kept() {
        assert_eq!(device_text("a\u{202e}b"), "a\\u{202e}b");
        // A device cannot forge an escape that reads like one we wrote.
        assert_eq!(device_text("\\u{1b}"), "\\\\u{1b}");
        assert_eq!(device_text("sn0123EE Ünïcode"), "sn0123EE Ünïcode");
    }

    #[test]
    fn long_text_is_cut_and_invalid_utf8_replaced() {
        let long = "x".repeat(MAX_DEVICE_TEXT + 50);
        let shown = device_text(&long);
        assert_eq!(shown.chars().count(), MAX_DEVICE_TEXT + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(device_bytes(b"a\xffb\x1b"), "a\u{fffd}b\\u{1b}");
    }
}
