//! The key tables in the module docs (rustc in `larder-key`, build-script runs and C
//! compiles in `larder-core`) name, for each input, the test that changes it and expects
//! a miss. Every named test must exist.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whether `fn name(` is in `file`.
fn defines(file: &Path, name: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.contains(&format!("fn {name}(")))
}

/// The last cell of every row of the table under a header whose last column names a
/// test, as (row input, cell).
fn test_cells(doc: &str) -> Vec<(String, String)> {
    let mut cells = Vec::new();
    let mut in_table = false;
    for line in doc.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            in_table = false;
            continue;
        };
        let cols: Vec<&str> = row.trim_end_matches('|').split(" | ").collect();
        if cols
            .last()
            .is_some_and(|c| c.contains("test that changes it"))
        {
            in_table = true;
            continue;
        }
        if in_table && !row.starts_with("---") {
            cells.push((
                cols[0].trim().to_string(),
                cols.last().unwrap().trim().to_string(),
            ));
        }
    }
    cells
}

#[test]
fn every_key_table_row_names_tests_that_exist() {
    let root = workspace();
    let mut sources = Vec::new();
    rust_files(&root.join("crates"), &mut sources);
    let sources: Vec<PathBuf> = sources
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .collect();
    let tables = [
        "crates/larder-key/src/lib.rs",
        "crates/larder-core/src/buildrun/mod.rs",
        "crates/larder-core/src/cc/mod.rs",
    ];
    for table in tables {
        let doc = std::fs::read_to_string(root.join(table)).unwrap();
        let cells = test_cells(&doc);
        assert!(cells.len() >= 5, "{table}: no key table with a test column");
        for (input, cell) in cells {
            if cell.starts_with("none") {
                continue;
            }
            let mut file: Option<PathBuf> = None;
            let mut named = 0;
            for token in cell.split('`').skip(1).step_by(2) {
                if token.ends_with(".rs") {
                    file = Some(root.join("crates/larder/tests/it").join(token));
                } else if let Some((_, name)) = token.rsplit_once("::") {
                    assert!(
                        sources.iter().any(|s| defines(s, name)),
                        "{table}, row {input}: no unit test {token}"
                    );
                    named += 1;
                } else if !token.contains('-') {
                    let f = file
                        .as_ref()
                        .unwrap_or_else(|| panic!("{table}, row {input}: {token} without a file"));
                    assert!(
                        defines(f, token),
                        "{table}, row {input}: no test {token} in {}",
                        f.display()
                    );
                    named += 1;
                }
            }
            assert!(named > 0, "{table}, row {input}: names no test: {cell}");
        }
    }
}
