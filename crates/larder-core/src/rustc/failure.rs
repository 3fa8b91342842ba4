//! Which failed compiles may be cached.
//!
//! Build scripts probe the compiler by compiling small files that are expected to fail
//! on a stable toolchain (anyhow, thiserror and autocfg users do), and they run on every
//! build in a new checkout. Their failures are as deterministic as successes when the
//! error is about the code itself, so caching them saves a rustc run per probe.
//!
//! A failure is cached only when all of these hold:
//! - rustc exited with 1 (a compile error; 101 is an internal error, a signal is a kill);
//! - the output is not linked (a linker failure can come from a missing system library,
//!   which is not an input);
//! - every error has an error code from [`DETERMINISTIC_ERRORS`]: errors about the code
//!   (an unstable feature on stable, an unresolved name, a type error). Errors without a
//!   code (I/O errors, parse errors) and errors about something missing (a module file,
//!   a crate) are never cached: dep-info cannot list a file that does not exist, so the
//!   cached failure could outlive the fix.

/// Error codes whose cause is the compiled code and the compiler, never a missing file.
pub const DETERMINISTIC_ERRORS: &[&str] = &[
    "E0061", // wrong number of arguments
    "E0277", // trait bound not satisfied
    "E0308", // mismatched types
    "E0405", // cannot find trait
    "E0412", // cannot find type
    "E0425", // cannot find value
    "E0432", // unresolved import
    "E0433", // failed to resolve path
    "E0554", // #![feature] on the stable channel
    "E0599", // no method or associated item
    "E0603", // private item
    "E0609", // no field
    "E0635", // unknown feature
    "E0658", // use of an unstable feature
];

/// Whether a failed compile's stderr shows only deterministic errors.
pub fn is_deterministic_failure(stderr: &str) -> bool {
    let mut codes = 0;
    for line in stderr.lines() {
        let error = if line.starts_with('{') {
            json_error(line)
        } else {
            human_error(line)
        };
        match error {
            None => {}
            Some(ErrorLine::Summary) => {}
            Some(ErrorLine::Coded(code)) if DETERMINISTIC_ERRORS.contains(&code.as_str()) => {
                codes += 1
            }
            Some(_) => return false,
        }
    }
    codes > 0
}

enum ErrorLine {
    /// `aborting due to N previous errors`.
    Summary,
    /// An error with a code.
    Coded(String),
    /// An error without a code.
    Uncoded,
}

fn classify(message: &str, code: Option<&str>) -> ErrorLine {
    match code {
        Some(c) => ErrorLine::Coded(c.to_string()),
        None if message.starts_with("aborting due to") => ErrorLine::Summary,
        None => ErrorLine::Uncoded,
    }
}

fn json_error(line: &str) -> Option<ErrorLine> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("$message_type").and_then(|t| t.as_str()) != Some("diagnostic") {
        return None;
    }
    let level = v.get("level").and_then(|l| l.as_str())?;
    if !level.starts_with("error") {
        return None;
    }
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    let code = v
        .get("code")
        .and_then(|c| c.get("code"))
        .and_then(|c| c.as_str());
    Some(classify(message, code))
}

fn human_error(line: &str) -> Option<ErrorLine> {
    let rest = line.strip_prefix("error")?;
    if let Some(coded) = rest.strip_prefix('[') {
        let (code, _) = coded.split_once("]:")?;
        return Some(ErrorLine::Coded(code.to_string()));
    }
    let message = rest.strip_prefix(": ")?;
    Some(classify(message, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failures_are_deterministic() {
        let human = "error[E0554]: `#![feature]` may not be used on the stable release channel\n --> build/probe.rs:1:1\n\nerror: aborting due to 1 previous error\n\nFor more information about this error, try `rustc --explain E0554`.\n";
        assert!(is_deterministic_failure(human));
        let json = r#"{"$message_type":"diagnostic","message":"use of unstable library feature","code":{"code":"E0658","explanation":"x"},"level":"error","spans":[]}
{"$message_type":"diagnostic","message":"aborting due to 1 previous error","code":null,"level":"error","spans":[]}"#;
        assert!(is_deterministic_failure(json));
    }

    #[test]
    fn missing_files_io_and_uncoded_errors_are_not() {
        assert!(!is_deterministic_failure(
            "error[E0583]: file not found for module `x`\nerror: aborting due to 1 previous error\n"
        ));
        assert!(!is_deterministic_failure(
            "error[E0463]: can't find crate for `foo`\n"
        ));
        assert!(!is_deterministic_failure(
            "error: couldn't read `src/data.txt`: No such file or directory (os error 2)\n"
        ));
        assert!(!is_deterministic_failure(
            "error: failed to write dep-info: No space left on device\n"
        ));
        assert!(!is_deterministic_failure(
            "error[E0554]: feature\nerror: expected one of `;`\n"
        ));
        assert!(!is_deterministic_failure(
            "error: aborting due to 1 previous error\n"
        ));
        assert!(!is_deterministic_failure(""));
    }
}
