//! A C compiler's header search list: the directories it looks in, in order, and the
//! ones it names but skips because they do not exist. Asked of the compiler itself
//! (`-E -v`) and memoized per compiler and arguments; read by [`super::depend`] to know
//! where a new header could shadow the one a compile read.

use std::path::Path;
use std::process::{Command, Stdio};

use larder_digest::{Digest, KeyHasher};

use super::args::CInvocation;
use super::key::C_TOOL_VARS;
use super::reason::CNotCacheable;
use crate::config::env;

/// The directories the compiler searches for headers with these arguments, as it
/// prints them for `-E -v` (quote and angle lists, and the directories it ignores
/// because they do not exist: one that appears later is searched). The probe also
/// passes `-MD -MF /dev/null`, so a compiler that does not take them fails it and its
/// compiles stay in preprocessor mode. Memoized in `cache_dir` (the store's tools
/// directory) per compiler, arguments that can change the list, and the compiler's
/// variables.
///
/// # Errors
/// [`CNotCacheable::PreprocessorFailed`] if the compiler cannot say.
pub fn search_dirs(
    compiler: &Path,
    compiler_id: &Digest,
    inv: &CInvocation,
    cwd: &Path,
    cache_dir: Option<&Path>,
) -> Result<SearchList, CNotCacheable> {
    let args = inv.search_probe_args();
    let mut h = KeyHasher::new();
    h.field("version", "larder-c-search-dirs-v1")
        .digest_field("compiler", compiler_id)
        .field("cwd", cwd.to_string_lossy().as_bytes());
    for a in &args {
        h.field("arg", a);
    }
    for name in C_TOOL_VARS {
        if let Some(v) = env::var_os(name) {
            h.field(name, v.to_string_lossy().as_bytes());
        }
    }
    let memo = cache_dir.map(|d| d.join(format!("c-search-{}", &h.finish().to_hex()[..32])));
    if let Some(text) = memo.as_ref().and_then(|m| std::fs::read_to_string(m).ok()) {
        let mut list = SearchList::default();
        for line in text.lines() {
            match line.split_at_checked(2) {
                Some(("+ ", d)) => list.dirs.push(d.to_string()),
                Some(("- ", d)) => list.missing.push(d.to_string()),
                _ => {}
            }
        }
        return Ok(list);
    }
    let out = Command::new(compiler)
        .args(&args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|_| CNotCacheable::PreprocessorFailed)?;
    if !out.status.success() {
        return Err(CNotCacheable::PreprocessorFailed);
    }
    let dirs = parse_search_list(&String::from_utf8_lossy(&out.stderr))
        .ok_or(CNotCacheable::PreprocessorFailed)?;
    if let Some(m) = &memo {
        let mut text = String::new();
        for d in &dirs.dirs {
            text.push_str(&format!("+ {d}\n"));
        }
        for d in &dirs.missing {
            text.push_str(&format!("- {d}\n"));
        }
        let _ = crate::fsio::write_atomic(m, text.as_bytes(), false);
    }
    Ok(dirs)
}

/// A compiler's header search list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchList {
    /// The directories searched, in order (quote-only ones first).
    pub dirs: Vec<String>,
    /// Directories named (by an argument or by default) that do not exist, so are not
    /// searched until they do.
    pub missing: Vec<String>,
}

/// The search list in a compiler's `-v` report, or `None` if it has none.
pub fn parse_search_list(stderr: &str) -> Option<SearchList> {
    let mut list = SearchList::default();
    let clean = |d: &str| {
        let d = d.trim();
        d.strip_suffix(" (framework directory)")
            .unwrap_or(d)
            .to_string()
    };
    let mut inside = false;
    let mut seen_list = false;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("ignoring nonexistent directory \"") {
            let d = clean(rest.trim_end().trim_end_matches('"'));
            if !list.missing.contains(&d) {
                list.missing.push(d);
            }
        } else if line.starts_with("#include ") && line.ends_with("search starts here:") {
            inside = true;
            seen_list = true;
        } else if line.starts_with("End of search list.") {
            inside = false;
        } else if inside && line.starts_with(' ') {
            let d = clean(line);
            if !d.is_empty() && !list.dirs.contains(&d) {
                list.dirs.push(d);
            }
        }
    }
    seen_list.then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_lists_are_read_from_the_compilers_report() {
        let gcc = "ignoring nonexistent directory \"/usr/local/include/x86_64-linux-gnu\"\nignoring nonexistent directory \"nothere\"\n#include \"...\" search starts here:\n quoted\n#include <...> search starts here:\n inc\n /usr/lib/gcc/x86_64-linux-gnu/12/include\n /usr/include\nEnd of search list.\n";
        let list = parse_search_list(gcc).unwrap();
        assert_eq!(
            list.dirs,
            [
                "quoted",
                "inc",
                "/usr/lib/gcc/x86_64-linux-gnu/12/include",
                "/usr/include"
            ]
        );
        assert_eq!(
            list.missing,
            ["/usr/local/include/x86_64-linux-gnu", "nothere"]
        );
        assert_eq!(parse_search_list("gcc version 12\n"), None);
    }
}
