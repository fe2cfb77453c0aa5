//! Terminal-safe rendering of untrusted text.
//!
//! Registry files, gists, snapshots and locks are written by strangers. Text
//! from them printed raw could drive the terminal (clear the screen, move
//! the cursor, recolour or conceal what follows, rewrite the window title)
//! or reorder what the reader sees with bidirectional overrides. Every
//! human-readable output of the client and the indexer passes such text
//! through [`terminal_safe`] (one line) or [`terminal_safe_block`] (several
//! lines); JSON output keeps the exact text, since JSON escaping suffices.
//!
//! Unsafe characters are shown, not dropped, so a reviewer sees that they
//! are there: C0 controls and DEL as `\xHH` (`\n`, `\r` by name), C1
//! controls and invisible direction marks as `\u{HHHH}`.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls, DEL, and
/// the bidirectional embeddings, overrides, isolates and marks.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The characters that change the display order of text or are invisible
/// direction marks (Trojan Source, CVE-2021-42574).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// `text` for one line of terminal output: every unsafe character, line
/// breaks included, visibly escaped; tabs kept.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    render(text, false)
}

/// `text` for several lines of terminal output: like [`terminal_safe`], but
/// `\n` is kept as a line break.
pub fn terminal_safe_block(text: &str) -> Cow<'_, str> {
    render(text, true)
}

/// The first unsafe character in `text` (byte offset and character), for
/// checks that warn about such text.
pub fn first_unsafe(text: &str) -> Option<(usize, char)> {
    text.char_indices()
        .find(|&(_, c)| c != '\t' && c != '\n' && is_unsafe(c))
}

fn render(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let keep = |c: char| c == '\t' || (keep_newlines && c == '\n');
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if keep(c) || !is_unsafe(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "Retries with jitter\tand backoff — naïve, 日本語";
        assert!(matches!(terminal_safe(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_are_shown_not_run() {
        let hostile = "\x1b[2J\x1b[H\x1b[32mNo advisories. Safe to approve.\x1b[8m";
        let safe = terminal_safe(hostile);
        assert!(!safe.contains('\x1b'), "{safe}");
        assert_eq!(
            safe,
            "\\x1b[2J\\x1b[H\\x1b[32mNo advisories. Safe to approve.\\x1b[8m"
        );
    }

    #[test]
    fn c1_controls_bidi_and_line_breaks_are_escaped() {
        assert_eq!(terminal_safe("a\u{9b}2Jb"), "a\\u{009b}2Jb");
        assert_eq!(
            terminal_safe("x\u{202e}y\u{2066}z\u{200f}"),
            "x\\u{202e}y\\u{2066}z\\u{200f}"
        );
        assert_eq!(terminal_safe("one\ntwo\r"), "one\\ntwo\\r");
        assert_eq!(terminal_safe("\x07\x7f\0"), "\\x07\\x7f\\x00");
        assert_eq!(terminal_safe_block("one\ntwo\x1b"), "one\ntwo\\x1b");
    }

    #[test]
    fn first_unsafe_finds_the_position() {
        assert_eq!(first_unsafe("fine\ttext\n"), None);
        assert_eq!(first_unsafe("ab\x1b[2J"), Some((2, '\x1b')));
        assert_eq!(first_unsafe("é\u{202e}"), Some((2, '\u{202e}')));
    }
}
