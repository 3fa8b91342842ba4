//! The shim that puts the build-script run cache in front of a build script.
//!
//! When larder compiles or restores a build script (`--crate-name build_script_build`,
//! or `build_script_<stem>` for `build = "<dir>/<stem>.rs"`), it moves the binary to
//! `<name>.larder-real` and writes a small `/bin/sh` shim under the original name that
//! runs `larder build-script-run <real binary>`. The shim is the only file larder adds to
//! the target directory; it is never stored (each machine writes its own).

use std::path::Path;

use crate::fsio::write_atomic;

/// The suffix of the real build-script binary beside its shim.
pub const REAL_SUFFIX: &str = ".larder-real";

/// The second line of every shim, to recognise one.
const SHIM_MARKER: &str = "# larder build-script shim";

/// Replaces the freshly compiled or restored build-script binary at `binary` by a shim
/// that runs it through larder. On failure the binary is left as it was.
///
/// # Errors
/// If the binary cannot be moved or the shim written.
pub fn install_shim(binary: &Path) -> std::io::Result<()> {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("bad name"))?;
    let real = binary.with_file_name(format!("{name}{REAL_SUFFIX}"));
    let exe = std::env::current_exe()?;
    let exe = exe
        .to_str()
        .ok_or_else(|| std::io::Error::other("larder's path is not UTF-8"))?;
    std::fs::rename(binary, &real)?;
    let shim = format!(
        "#!/bin/sh\n{SHIM_MARKER}: larder caches the runs of {real_name}, the build script beside this file.\nexec {exe} build-script-run \"$(dirname \"$0\")\"/{real_name} \"$@\"\n",
        exe = sh_quote(exe),
        real_name = sh_quote(&format!("{name}{REAL_SUFFIX}")),
    );
    if let Err(e) = write_atomic(binary, shim.as_bytes(), true) {
        let _ = std::fs::rename(&real, binary);
        return Err(e);
    }
    Ok(())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_runs_the_real_binary_name() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("build_script_build-abc");
        std::fs::write(&bin, b"\x7fELF real").unwrap();
        install_shim(&bin).unwrap();
        let shim = std::fs::read_to_string(&bin).unwrap();
        assert!(shim.starts_with("#!/bin/sh\n"));
        assert!(shim.contains(SHIM_MARKER));
        assert!(shim.contains("build-script-run"));
        assert!(shim.contains("'build_script_build-abc.larder-real'"));
        assert_eq!(
            std::fs::read(dir.path().join("build_script_build-abc.larder-real")).unwrap(),
            b"\x7fELF real"
        );
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
