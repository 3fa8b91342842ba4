//! The dependency-file key of a C or C++ compile ("depend mode"): what a compile read,
//! taken from the dependency file the compiler writes while it compiles (`-MD -MF`),
//! instead of a preprocessor run before every lookup.
//!
//! The invocation key covers what is known before the compile: the compiler, the
//! arguments, the environment and the source file's content. Its manifest lists, per
//! compile seen, a [`larder_key::ManifestEntry`] of:
//!
//! | what | how a lookup checks it | why |
//! |---|---|---|
//! | every file the compile read (the dependency file's prerequisites) | content digest | a header's content changes the object |
//! | every directory where a header could newly appear, with the names looked up there, as `<dir>/@larder:names/<name>/...` | [`names_digest`]: which of those names exist there, and as what | a header added earlier in the search path (or next to an includer) shadows the one read |
//! | the same directories where they do not exist | must still not exist (`absent`) | a directory created with a shadowing header |
//! | with `__FILE__` or `__BASE_FILE__` in any file read: the roots its paths lie under, as [`ROOT_PIN`]`<name>` | the root's path in this build | the expansion writes the absolute path into the object |
//!
//! The names watched ([`watched_dirs`]): every name the compile looked up (each
//! `#include`'s, each `__has_include`'s, each `-include`'s), in every directory the
//! compiler would search before the one it found it in: earlier directories of its
//! search list ([`super::search::search_dirs`], from `-E -v`; its missing directories always) and, for
//! a quoted name not found next to its includer, that directory. A name's directory
//! part goes with the directory (`bits/types.h` in `/usr/local/include` is `types.h`
//! in `/usr/local/include/bits`), so a directory that appears on the way shows too.
//! Other names in those directories do not matter: machines with other headers
//! installed share entries as long as no name the compile looked up differs.
//!
//! Some texts are not keyed this way ([`super::directives::Scan::refusal`]): `__DATE__`, `__TIME__`,
//! `__TIMESTAMP__` (the output changes without any input changing), `#embed` and
//! `__has_embed` (files a dependency file may not list), `__has_include` of a macro (a
//! name larder cannot watch) and `.incbin`. Their entry lists instead the digest of
//! the preprocessed text under the pseudo-file [`PREPROCESSED`], which a lookup computes
//! by running the preprocessor, as the preprocessor mode does.
//!
//! A miss reads each file's digest and directives through [`super::header_memo`], which
//! remembers them per settled file version.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use larder_digest::Digest;

use super::directives::Includes;
use super::search::SearchList;

/// The version of the depend-mode invocation key; never equal to a preprocessor-mode
/// key ([`super::key::C_KEY_VERSION`]) nor a rustc key.
pub const C_DEPEND_KEY_VERSION: &str = "larder-c-depend-key-v1";

/// The pseudo-file of a fallback entry: its digest is the preprocessed text's.
pub const PREPROCESSED: &str = "@larder:preprocessed";

/// The prefix of a pinned root in an entry's variables: `@larder:root:cwd` = its path.
pub const ROOT_PIN: &str = "@larder:root:";

/// The digest a watched directory has when it exists but is not a directory.
const NOT_A_DIRECTORY: &[u8] = b"larder:not-a-directory";

/// The component that separates a watched directory from the names looked up in it,
/// in an entry's path: `<dir>/@larder:names/<name>/<name>...` ([`names_digest`]).
pub const NAMES: &str = "@larder:names";

/// The prerequisites of the first rule of a Makefile dependency file (`obj.o: a.c b.h
/// \`), unescaped (`\ `, `\#`, `$$`), in order, without duplicates.
pub fn parse_depfile(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_target = true;
    let mut chars = text.chars().peekable();
    let push = |word: &mut String, in_target: &mut bool, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        if *in_target {
            // `obj.o:` ends the target; a lone `:` too.
            if w.ends_with(':') {
                *in_target = false;
            }
        } else if !out.contains(&w) {
            out.push(w);
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(' ' | '#' | '\\' | ':') => {
                    word.push(chars.next().unwrap_or_default());
                }
                Some('\n') => {
                    chars.next();
                    push(&mut word, &mut in_target, &mut out);
                }
                Some('\r') => {
                    chars.next();
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    push(&mut word, &mut in_target, &mut out);
                }
                _ => word.push('\\'),
            },
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                word.push('$');
            }
            ':' if in_target && matches!(chars.peek(), None | Some(' ' | '\t' | '\n' | '\r')) => {
                word.push(':');
                push(&mut word, &mut in_target, &mut out);
            }
            ' ' | '\t' | '\r' => push(&mut word, &mut in_target, &mut out),
            '\n' => {
                push(&mut word, &mut in_target, &mut out);
                if !in_target {
                    // The first rule is over (`-MP` phony targets follow).
                    break;
                }
            }
            c => word.push(c),
        }
    }
    push(&mut word, &mut in_target, &mut out);
    out
}

/// `path` with `.` and `dir/..` removed, without touching the file system (`..` at the
/// start of a relative path stays).
pub fn lexical(path: &str) -> String {
    // Most paths are already in this form: no components to drop.
    if is_lexical(path) {
        return path.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    for c in Path::new(path).components() {
        match c {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            Component::Normal(s) => parts.push(s.to_str().unwrap_or_default()),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Whether [`lexical`] leaves `path` as it is: no empty, `.` or `..` component, and no
/// trailing `/` (a leading `/` is the root).
fn is_lexical(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.last() == Some(&b'/') {
        return false;
    }
    // One pass over the bytes: called a few thousand times per compile.
    let mut start = 0;
    for end in (0..bytes.len())
        .filter(|&i| bytes[i] == b'/')
        .chain([bytes.len()])
    {
        let component = &bytes[start..end];
        if (component.is_empty() && start > 0) || component == b"." || component == b".." {
            return false;
        }
        start = end + 1;
    }
    true
}

/// [`lexical`] of an owned path, without a copy when it is already in that form.
fn into_lexical(path: String) -> String {
    if is_lexical(&path) {
        path
    } else {
        lexical(&path)
    }
}

/// `dir/name`, where an empty `dir` is the working directory.
fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => dir.to_string(),
        (false, false) => {
            let dir = dir.trim_end_matches('/');
            let mut p = String::with_capacity(dir.len() + 1 + name.len());
            p.push_str(dir);
            p.push('/');
            p.push_str(name);
            p
        }
    }
}

/// The parent of a spelled path (`""` for a bare file name).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Every directory where a header could newly appear and change this compile, spelled
/// relative to the working directory or absolute, lexically normalized, sorted.
///
/// `search` is the compiler's search list; `read` the files the compile read (the
/// source first, spelled as in the dependency file) with their directives; `asked` the
/// names `__has_include` asked for and the `-include` files (watched everywhere: in the
/// whole search list, next to every file read and in the working directory). The compiler takes the
/// first match in order, so for each name looked up:
///
/// - a quoted name found next to its includer (searched first) can be shadowed by
///   nothing; otherwise that directory is watched and the name is looked up as an
///   angled one;
/// - an angled name is watched in every search directory before the one it was found
///   in (all of them if it was not found, or for `#include_next`);
/// - every name is watched in each missing directory of the list;
/// - with a computed directive (`#include MACRO`) anywhere, every name any read file
///   could have been found by (its path less a search directory) is watched in every
///   search directory and next to each file with such a directive.
///
/// A name is watched as its last component in its directory (`bits/types.h` in
/// `/usr/local/include`: `types.h` in `/usr/local/include/bits`), so a new directory
/// on the way shows too. Returns each directory with its names.
pub fn watched_dirs(
    search: &SearchList,
    read: &[(String, Includes)],
    asked: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    // A search directory also in canonical form: the compiler may canonicalize a
    // system header's path (`.../12/../../../../include/c++/12` is `/usr/include/c++/12`).
    let forms = |p: &str, canonical: bool| -> Vec<String> {
        let mut v = vec![p.trim_end_matches('/').to_string(), lexical(p)];
        if canonical
            && p.starts_with('/')
            && let Some(c) = std::fs::canonicalize(lexical(p))
                .ok()
                .and_then(|c| c.to_str().map(str::to_string))
        {
            v.push(c);
        }
        v.dedup();
        v
    };
    // Looked up about once per name and search directory (a thousand times for an
    // aws-lc source): no copy of a path already in lexical form, no second lookup.
    let read_forms: HashSet<String> = read.iter().flat_map(|(f, _)| forms(f, false)).collect();
    let found = |dir: &str, name: &str| {
        let p = join(dir, name);
        read_forms.contains(&p) || (!is_lexical(&p) && read_forms.contains(&lexical(&p)))
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut watch = |dir: &str, name: &str| {
        // An absolute name is opened as it is: nothing can shadow it.
        if name.starts_with('/') {
            return;
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        let at = into_lexical(join(dir, parent(name)));
        match out.get_mut(&at) {
            Some(names) if names.contains(base) => {}
            Some(names) => {
                names.insert(base.to_string());
            }
            None => {
                out.insert(at, BTreeSet::from([base.to_string()]));
            }
        }
    };
    // Names looked up through the search list, and whether from its start to the end.
    let mut angled: BTreeSet<(String, bool)> = BTreeSet::new();
    // `__has_include("x.h")` looks next to its file first and `-include x.h` in the
    // working directory: an asked name is watched next to every file read and there.
    for n in asked {
        angled.insert((n.clone(), true));
        for (f, _) in read {
            watch(parent(f), n);
        }
        watch("", n);
    }
    let computed = read.iter().any(|(_, inc)| inc.computed);
    for (f, inc) in read {
        let here = parent(f);
        for q in &inc.quoted {
            if !found(here, q) {
                watch(here, q);
                angled.insert((q.clone(), false));
            }
        }
        for n in &inc.angled {
            angled.insert((n.clone(), false));
        }
        for n in &inc.next {
            angled.insert((n.clone(), true));
        }
    }
    if computed {
        let search_forms: Vec<Vec<String>> = search.dirs.iter().map(|d| forms(d, true)).collect();
        for (f, _) in read.iter().skip(1) {
            for spelled in forms(f, false) {
                for d in &search_forms {
                    for c in d {
                        if let Some(name) = spelled
                            .strip_prefix(c.as_str())
                            .and_then(|r| r.strip_prefix('/'))
                        {
                            angled.insert((name.to_string(), true));
                        }
                    }
                }
                if !spelled.starts_with('/') {
                    angled.insert((spelled.clone(), true));
                }
            }
        }
    }
    for (n, everywhere) in &angled {
        for d in &search.dirs {
            if !everywhere && found(d, n) {
                break;
            }
            watch(d, n);
        }
        for d in &search.missing {
            watch(d, n);
        }
    }
    if computed {
        for (f, _) in read.iter().filter(|(_, inc)| inc.computed) {
            for (n, _) in &angled {
                watch(parent(f), n);
            }
        }
    }
    out
}

/// The digest of what `names` are in `dir`: each name with its kind (`d`irectory,
/// `f`ile, `o`ther, `-` absent), following symbolic links; a fixed digest if `dir` is
/// not a directory. `None` if nothing is at `dir` or it cannot be read.
pub fn names_digest<'n>(dir: &Path, names: impl IntoIterator<Item = &'n str>) -> Option<Digest> {
    names_listing(dir, names, None).map(|(digest, _)| digest)
}

/// [`names_digest`] of `names` in `dir` and, among them, one created or changed at or
/// after `since` (the compiler may or may not have seen it), if any: one look at each
/// name for both (for a symbolic link, the link's times and its target's).
pub fn names_digest_since<'n>(
    dir: &Path,
    names: impl IntoIterator<Item = &'n str>,
    since: SystemTime,
) -> Option<(Digest, Option<PathBuf>)> {
    names_listing(dir, names, Some(since))
}

fn names_listing<'n>(
    dir: &Path,
    names: impl IntoIterator<Item = &'n str>,
    since: Option<SystemTime>,
) -> Option<(Digest, Option<PathBuf>)> {
    let meta = std::fs::metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some((Digest::of(NOT_A_DIRECTORY), None));
    }
    let absent = |e: &std::io::Error| {
        // ENOTDIR: a file where the name's directory part would be.
        e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20)
    };
    let mut text = String::new();
    let mut changed = None;
    for n in names {
        let path = dir.join(n);
        // The name itself, then (for a symbolic link) what it points to.
        let mut metas = Vec::with_capacity(1);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_symlink() => {
                metas.push(m);
                match std::fs::metadata(&path) {
                    Ok(target) => metas.push(target),
                    Err(e) if absent(&e) => {}
                    Err(_) => return None,
                }
            }
            Ok(m) => metas.push(m),
            Err(e) if absent(&e) => {}
            Err(_) => return None,
        }
        let kind = match metas.last() {
            Some(m) if m.is_symlink() => '-', // a link to nothing
            Some(m) if m.is_dir() => 'd',
            Some(m) if m.is_file() => 'f',
            Some(_) => 'o',
            None => '-',
        };
        if let Some(since) = since
            && changed.is_none()
            && metas
                .iter()
                .any(|m| crate::hashing::changed_at_or_after(m, since))
        {
            changed = Some(path);
        }
        text.push(kind);
        text.push(' ');
        text.push_str(n);
        text.push('\n');
    }
    Some((Digest::of(text.as_bytes()), changed))
}

/// The entry path of `names` looked up in `dir` (`dir` already normalized).
pub fn names_path<'n>(dir: &str, names: impl IntoIterator<Item = &'n String>) -> String {
    let mut p = format!("{}/{NAMES}", dir.trim_end_matches('/'));
    for n in names {
        p.push('/');
        p.push_str(n);
    }
    p
}

/// The directory and names of an entry path made by [`names_path`], or `None` for a
/// plain file.
pub fn split_names(path: &Path) -> Option<(&Path, Vec<&str>)> {
    let text = path.to_str()?;
    let marker = format!("/{NAMES}");
    let at = text.find(&marker)?;
    let names = text[at + marker.len()..]
        .split('/')
        .filter(|n| !n.is_empty())
        .collect();
    Some((Path::new(&text[..at.max(1)]), names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depfiles_are_parsed_with_escapes_and_continuations() {
        let text = "out/a.o: src/a.c /usr/include/stdio.h \\\n inc/my\\ file.h inc/cost$$.h \\\n  src/a.c\n\ninc/x.h:\n";
        assert_eq!(
            parse_depfile(text),
            [
                "src/a.c",
                "/usr/include/stdio.h",
                "inc/my file.h",
                "inc/cost$.h"
            ]
        );
        assert_eq!(parse_depfile("/tmp/x y/a.o : a.c\n"), ["a.c"]);
    }

    #[test]
    fn paths_already_in_lexical_form_are_told_apart() {
        for (path, plain) in [
            ("", true),
            ("/", false),
            ("/a/b.h", true),
            ("a", true),
            ("a/", false),
            ("a//b", false),
            ("//a", false),
            ("./a", false),
            ("a/.", false),
            ("a/../b", false),
            ("..", false),
            ("a/.b/c..", true),
        ] {
            assert_eq!(is_lexical(path), plain, "{path:?}");
            if plain {
                assert_eq!(lexical(path), path);
            }
        }
    }

    #[test]
    fn lexical_forms() {
        assert_eq!(lexical("/a/b/../c/./d"), "/a/c/d");
        assert_eq!(
            lexical("/usr/lib/gcc/x/12/../../../../include"),
            "/usr/include"
        );
        assert_eq!(lexical("../x/../y"), "../y");
        assert_eq!(lexical("a/"), "a");
        assert_eq!(lexical(""), "");
        assert_eq!(lexical("/"), "/");
        assert_eq!(lexical("a//b"), "a/b");
        assert_eq!(lexical("./a"), "a");
        assert_eq!(lexical("/.."), "/");
        assert_eq!(lexical("inc/openssl/ssl.h"), "inc/openssl/ssl.h");
    }

    #[test]
    fn names_are_watched_where_they_could_shadow() {
        let search = SearchList {
            dirs: vec!["inc".into(), "/sys/local".into(), "/sys/inc".into()],
            missing: vec!["gone".into()],
        };
        let read = vec![
            (
                "src/a.c".to_string(),
                Includes::of(
                    b"#include <openssl/ssl.h>\n#include \"../internal.h\"\n#include \"conf.h\"\n",
                ),
            ),
            (
                "inc/openssl/ssl.h".to_string(),
                Includes::of(b"#include <stdio.h>\n"),
            ),
            ("src/../internal.h".to_string(), Includes::default()),
            ("inc/conf.h".to_string(), Includes::default()),
            ("/sys/inc/stdio.h".to_string(), Includes::default()),
        ];
        let asked: BTreeSet<String> = ["sys/random.h".to_string()].into();
        let w: Vec<String> = watched_dirs(&search, &read, &asked).into_keys().collect();
        let expect = [
            // `stdio.h`, found in the last directory: the two before it.
            "inc",
            "/sys/local",
            // `conf.h` quoted but not next to `src/a.c`: there, then as angled (found
            // in `inc`, the first).
            "src",
            // `sys/random.h` asked for: everywhere, next to every file read too, and
            // in the working directory.
            "inc/openssl/sys",
            "sys",
            "src/sys",
            "/sys/inc/sys",
            "inc/sys",
            "/sys/local/sys",
            "/sys/inc/sys",
            "gone/sys",
            // Every name in the missing directory.
            "gone",
            "gone/openssl",
        ];
        let mut want: Vec<&str> = expect.to_vec();
        want.sort_unstable();
        want.dedup();
        // `openssl/ssl.h` found in `inc`, the first: nothing can shadow it; nor
        // `../internal.h`, found next to `src/a.c`.
        assert_eq!(w, want);
        // A computed include anywhere: every name everywhere, and next to that file.
        let mut read = read;
        read[4].1.computed = true;
        let w: Vec<String> = watched_dirs(&search, &read, &asked).into_keys().collect();
        for must in ["/sys/inc/openssl", "/sys/local/openssl", "/sys/inc"] {
            assert!(w.iter().any(|x| x == must), "{must} not in {w:?}");
        }
    }

    #[test]
    fn names_are_checked_in_their_directory() {
        let d = tempfile::tempdir().unwrap();
        let names = ["x.h", "sub"];
        let a = names_digest(d.path(), names).unwrap();
        std::fs::write(d.path().join("other.h"), b"").unwrap();
        assert_eq!(names_digest(d.path(), names).unwrap(), a, "another name");
        std::fs::write(d.path().join("x.h"), b"").unwrap();
        let b = names_digest(d.path(), names).unwrap();
        assert_ne!(a, b, "a name appeared");
        std::fs::write(d.path().join("x.h"), b"changed").unwrap();
        assert_eq!(
            names_digest(d.path(), names).unwrap(),
            b,
            "content is hashed elsewhere"
        );
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert_ne!(
            names_digest(d.path(), names).unwrap(),
            b,
            "a directory appeared"
        );
        assert_eq!(names_digest(&d.path().join("none"), names), None);
        assert_eq!(
            names_digest(&d.path().join("x.h"), names),
            Some(Digest::of(NOT_A_DIRECTORY))
        );
        // A link is what it points to; one to nothing is absent.
        std::os::unix::fs::symlink("x.h", d.path().join("link.h")).unwrap();
        std::os::unix::fs::symlink("nowhere.h", d.path().join("dangling.h")).unwrap();
        assert_eq!(
            names_digest(d.path(), ["link.h", "dangling.h"]).unwrap(),
            Digest::of(b"f link.h\n- dangling.h\n")
        );
        // A name created or changed at or after `since` is named, with the same digest.
        let before = SystemTime::now() - std::time::Duration::from_secs(5);
        let (digest, changed) = names_digest_since(d.path(), names, before).unwrap();
        assert_eq!(digest, names_digest(d.path(), names).unwrap());
        assert_eq!(changed, Some(d.path().join("x.h")));
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        assert_eq!(names_digest_since(d.path(), names, later).unwrap().1, None);
        let p = names_path("/a/b", &["x.h".to_string(), "y".to_string()]);
        assert_eq!(p, "/a/b/@larder:names/x.h/y");
        let (dir, got) = split_names(Path::new(&p)).unwrap();
        assert_eq!((dir, got), (Path::new("/a/b"), vec!["x.h", "y"]));
        assert_eq!(split_names(Path::new("/a/b/x.h")), None);
    }
}
