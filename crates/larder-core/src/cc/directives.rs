//! What the texts of a C or assembler compile say about its inputs: the names its
//! `#include` directives look up ([`Includes`]) and the words that decide how it may be
//! keyed ([`Scan`]: `__FILE__`, `__has_include`, and what a dependency file cannot show).
//! Byte-level and cheap: no preprocessor runs; read by [`super::depend`].

use std::collections::BTreeSet;

use memchr::memmem;
use serde::{Deserialize, Serialize};

/// What one file's text says, as a depend-mode entry needs it: the same for every
/// compile that reads the file, so it can be remembered per file version
/// ([`super::header_memo`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFacts {
    /// `__FILE__` or `__BASE_FILE__` appears: paths can reach the object.
    pub file_macro: bool,
    /// Why the text needs the preprocessed fallback in any compile, if it does.
    pub refusal: Option<String>,
    /// `include` appears other than as a directive or `__has_include`: in an
    /// assembler compile, maybe the assembler's `.include`, which no dependency file
    /// lists.
    pub other_include: bool,
    /// The names `__has_include` and `__has_include_next` ask for.
    pub has_include: BTreeSet<String>,
    /// Its `#include` directives.
    pub includes: Includes,
}

impl TextFacts {
    /// Reads the facts of one file's text.
    pub fn of(text: &[u8]) -> TextFacts {
        let mut out = TextFacts {
            file_macro: memmem::find(text, b"__FILE__").is_some()
                || memmem::find(text, b"__BASE_FILE__").is_some(),
            other_include: has_other_include(text),
            includes: Includes::of(text),
            ..TextFacts::default()
        };
        out.refusal = [
            "__DATE__",
            "__TIME__",
            "__TIMESTAMP__",
            "__has_embed",
            // With or without the dot: `.incbin` may be pasted or stringified.
            "incbin",
        ]
        .into_iter()
        .find(|word| memmem::find(text, word.as_bytes()).is_some())
        .map(str::to_string);
        if out.refusal.is_none() && has_embed_directive(text) {
            out.refusal = Some("#embed".into());
        }
        for at in memmem::find_iter(text, b"__has_include") {
            let rest = &text[at + "__has_include".len()..];
            let rest = rest.strip_prefix(b"_next").unwrap_or(rest);
            match include_name(rest) {
                Some(name) => {
                    out.has_include.insert(name);
                }
                // `defined(__has_include)`, `#ifdef __has_include`: a test for the
                // feature, not a lookup.
                None if is_feature_test(text, at, rest) => {}
                None => {
                    out.refusal
                        .get_or_insert_with(|| "__has_include of a macro".into());
                }
            }
        }
        out
    }
}

/// What the texts a compile read say about how it may be keyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// `__FILE__` or `__BASE_FILE__` appears: paths can reach the object.
    pub file_macro: bool,
    /// Why these texts need the preprocessed fallback, if they do.
    pub refusal: Option<String>,
    /// The names `__has_include` and `__has_include_next` ask for.
    pub has_include: BTreeSet<String>,
}

impl Scan {
    /// Scans one file's text; see [`Scan::merge`].
    pub fn add(&mut self, text: &[u8], assembler: bool) {
        self.merge(&TextFacts::of(text), assembler);
    }

    /// Adds what one file's text says; in an `assembler` compile, any `include` that
    /// is not a preprocessor directive may be the assembler's `.include`, which no
    /// dependency file lists.
    pub fn merge(&mut self, facts: &TextFacts, assembler: bool) {
        self.file_macro |= facts.file_macro;
        if self.refusal.is_none() {
            self.refusal = facts
                .refusal
                .clone()
                .or_else(|| (assembler && facts.other_include).then(|| ".include".into()));
        }
        self.has_include.extend(facts.has_include.iter().cloned());
    }
}

/// Whether `include` appears other than as `#include`, `#include_next` or
/// `__has_include` (in assembler: maybe `.include`).
fn has_other_include(text: &[u8]) -> bool {
    memmem::find_iter(text, b"include")
        .any(|at| !after_hash(text, at) && !text[..at].ends_with(b"__has_"))
}

/// Whether `#embed` appears as a directive (`#`, blanks, `embed`).
fn has_embed_directive(text: &[u8]) -> bool {
    memmem::find_iter(text, b"embed").any(|at| after_hash(text, at))
}

/// Whether the last character before `at` that is not a blank is `#`.
fn after_hash(text: &[u8], at: usize) -> bool {
    text[..at].iter().rev().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b'#')
}

/// The name in `(<name>)` or `("name")` after `__has_include`, blanks allowed.
fn include_name(rest: &[u8]) -> Option<String> {
    let rest = trim_start(rest).strip_prefix(b"(")?;
    let rest = trim_start(rest);
    let close = match rest.first()? {
        b'<' => b'>',
        b'"' => b'"',
        _ => return None,
    };
    let body = &rest[1..];
    let end = body.iter().position(|&b| b == close || b == b'\n')?;
    (body[end] == close)
        .then(|| String::from_utf8(body[..end].to_vec()).ok())
        .flatten()
        .filter(|n| !n.is_empty())
}

/// `__has_include` not followed by `(`, or inside `defined(...)` / after `#ifdef`.
fn is_feature_test(text: &[u8], at: usize, rest: &[u8]) -> bool {
    let next = trim_start(rest).first().copied();
    if next != Some(b'(') {
        return true;
    }
    let before: Vec<u8> = text[..at]
        .iter()
        .rev()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t'))
        .take(8)
        .collect();
    // `defined(__has_include)` reads backwards as `(denifed`.
    before.starts_with(b"(denifed")
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    &b[n..]
}

/// The `#include`, `#include_next` and `#import` directives of one file's text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Includes {
    /// Names in quotes (`#include "x.h"`): looked up next to the file first.
    pub quoted: BTreeSet<String>,
    /// Names in angle brackets.
    pub angled: BTreeSet<String>,
    /// Names of `#include_next`, either form: looked up after the includer's directory.
    pub next: BTreeSet<String>,
    /// A directive whose name is a macro (`#include HDR`), or one larder could not read.
    pub computed: bool,
}

impl Includes {
    /// Reads the directives of `text`, comments left out (also inside `#if 0`: more
    /// names only watch more).
    pub fn of(text: &[u8]) -> Includes {
        let out = Includes::parse(text);
        if out.computed {
            // Maybe a directive-like line in a comment: read again without comments.
            return Includes::parse(&without_comments(text));
        }
        out
    }

    fn parse(text: &[u8]) -> Includes {
        let mut out = Includes::default();
        for word in [&b"include"[..], b"import"] {
            for at in memmem::find_iter(text, word) {
                let line_start = text[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let before: Vec<u8> = text[line_start..at]
                    .iter()
                    .copied()
                    .filter(|b| !matches!(b, b' ' | b'\t'))
                    .collect();
                if before != b"#" {
                    continue;
                }
                let rest = &text[at + word.len()..];
                let (rest, next) = match rest.strip_prefix(b"_next") {
                    Some(r) => (r, true),
                    None => (rest, false),
                };
                // `#includes`, `#import_foo`: not a directive.
                if !rest
                    .first()
                    .is_some_and(|b| matches!(b, b' ' | b'\t' | b'<' | b'"'))
                {
                    if rest.first().is_some_and(|b| *b != b'\n') {
                        continue;
                    }
                    out.computed = true;
                    continue;
                }
                let rest = trim_start(rest);
                let (close, quoted) = match rest.first() {
                    Some(b'"') => (b'"', true),
                    Some(b'<') => (b'>', false),
                    _ => {
                        out.computed = true;
                        continue;
                    }
                };
                let body = &rest[1..];
                let name = body
                    .iter()
                    .position(|&b| b == close || b == b'\n')
                    .filter(|&end| body[end] == close)
                    .and_then(|end| String::from_utf8(body[..end].to_vec()).ok());
                match name {
                    Some(n) if next => {
                        out.next.insert(n);
                    }
                    Some(n) if quoted => {
                        out.quoted.insert(n);
                    }
                    Some(n) => {
                        out.angled.insert(n);
                    }
                    None => out.computed = true,
                }
            }
        }
        out
    }
}

/// `text` with its C and C++ comments replaced by blanks (line breaks kept); string
/// and character literals end at the end of their line.
fn without_comments(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'/' if text.get(i + 1) == Some(&b'*') => {
                let end = memmem::find(&text[i + 2..], b"*/").map_or(text.len(), |e| i + 2 + e + 2);
                out.extend(
                    text[i..end]
                        .iter()
                        .map(|&c| if c == b'\n' { b'\n' } else { b' ' }),
                );
                i = end;
            }
            b'/' if text.get(i + 1) == Some(&b'/') => {
                let end = memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |e| i + e);
                out.extend(std::iter::repeat_n(b' ', end - i));
                i = end;
            }
            b'"' | b'\'' => {
                out.push(b);
                i += 1;
                while i < text.len() && text[i] != b && text[i] != b'\n' {
                    if text[i] == b'\\' && i + 1 < text.len() && text[i + 1] != b'\n' {
                        out.push(text[i]);
                        i += 1;
                    }
                    out.push(text[i]);
                    i += 1;
                }
                if i < text.len() && text[i] == b {
                    out.push(b);
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_scanned() {
        let mut s = Scan::default();
        s.add(
            b"#if __has_include(<sys/random.h>)\n#endif\n#if defined(__has_include)\n",
            true,
        );
        s.add(b"# if __has_include_next ( \"cfg.h\" )\n", false);
        assert_eq!(
            s.has_include.iter().cloned().collect::<Vec<_>>(),
            ["cfg.h", "sys/random.h"]
        );
        assert!(s.refusal.is_none());
        assert!(!s.file_macro);
        s.add(b"#define A assert_fail(__FILE__)\n", false);
        assert!(s.file_macro);
        // Assembler: `#include` is the preprocessor's, `.include` the assembler's.
        let mut asm = Scan::default();
        asm.add(
            b"#include \"x.h\"\n  # include_next <y.h>\nmov %rax, %rbx\n",
            true,
        );
        assert_eq!(asm.refusal, None);
        asm.add(b".include \"macros.s\"\n", true);
        assert_eq!(asm.refusal.as_deref(), Some(".include"));
        for (text, why) in [
            (&b"#if __has_include(HDR)\n"[..], "__has_include of a macro"),
            (b"const char *d = __DATE__;", "__DATE__"),
            (b"#  embed \"x.bin\"", "#embed"),
            (b"asm(\".incbin \\\"x\\\"\");", "incbin"),
        ] {
            let mut s = Scan::default();
            s.add(text, false);
            assert_eq!(s.refusal.as_deref(), Some(why));
        }
    }

    #[test]
    fn directives_are_read() {
        let inc = Includes::of(
            b"#include <stdio.h>\n  #  include_next \"cfg.h\"\n#import <Foo/Bar.h>\n// #include \"c.h\"\nint includes;\n#includes\n",
        );
        assert_eq!(
            inc.angled.iter().collect::<Vec<_>>(),
            ["Foo/Bar.h", "stdio.h"]
        );
        assert!(inc.quoted.is_empty());
        assert_eq!(inc.next.iter().collect::<Vec<_>>(), ["cfg.h"]);
        assert!(!inc.computed);
        assert!(Includes::of(b"#include HDR(x)\n").computed);
        let commented = Includes::of(
            b"/* #include's protect themselves, and we may\n   #include_next through */\n// #include X\n#include <a.h> /* #include Y */\n",
        );
        assert!(!commented.computed, "{commented:?}");
        assert_eq!(commented.angled.iter().collect::<Vec<_>>(), ["a.h"]);
    }
}
