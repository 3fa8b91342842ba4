//! Which environment variables are part of the key.
//!
//! Three groups (see the table in the crate docs):
//! - the variables cargo sets for the unit (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`,
//!   `OUT_DIR`, ...): every `CARGO_*` variable except the ones cargo consumes itself as
//!   configuration ([`is_cargo_config`]), which reach rustc only through its arguments;
//! - variables rustc or the linker it runs read ([`TOOL_VARS`]);
//! - variables the user declares (`extra_env`), for proc macros that read the environment
//!   without telling rustc.
//!
//! Variables a crate reads with `env!`/`option_env!` are also listed in dep-info and
//! checked through the direct-mode manifest, whatever their name.

/// Variables read by rustc itself or by the system linker it invokes.
pub const TOOL_VARS: &[&str] = &[
    "RUSTC_BOOTSTRAP",
    "RUSTC_FORCE_RUSTC_VERSION",
    "SOURCE_DATE_EPOCH",
    "LIBRARY_PATH",
    "COMPILER_PATH",
    "GCC_EXEC_PREFIX",
    "LD_RUN_PATH",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "IPHONEOS_DEPLOYMENT_TARGET",
    "TVOS_DEPLOYMENT_TARGET",
    "WATCHOS_DEPLOYMENT_TARGET",
    "XROS_DEPLOYMENT_TARGET",
];

/// `CARGO_*` variables that configure cargo itself (its terminal, network, registry,
/// job count, profiles, target directory, jobserver). Their effect on a compile, if any,
/// is in rustc's arguments, so they are left out of the key: a CI job with
/// `CARGO_TERM_COLOR=always` shares entries with a laptop.
pub fn is_cargo_config(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MAKEFLAGS",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_INCREMENTAL",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_LOG",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_BUILD_",
        "CARGO_TERM_",
        "CARGO_HTTP_",
        "CARGO_NET_",
        "CARGO_REGISTRY_",
        "CARGO_REGISTRIES_",
        "CARGO_LOG_",
        "CARGO_PROFILE_",
        "CARGO_CACHE_",
        "CARGO_ALIAS_",
        "CARGO_INSTALL_",
        "CARGO_FUTURE_INCOMPAT_",
        "CARGO_UNSTABLE_",
        "CARGO_RESOLVER_",
        "CARGO_DOC_",
        "CARGO_CARGO_NEW_",
        "CARGO_SOURCE_",
        "CARGO_PATCH_",
        "CARGO_GC_",
    ];
    if EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)) {
        return true;
    }
    // `CARGO_TARGET_<TRIPLE>_{LINKER,RUNNER,RUSTFLAGS}` configure cargo; cargo sets
    // `CARGO_TARGET_TMPDIR` for integration tests, which code can read.
    name.starts_with("CARGO_TARGET_") && name != "CARGO_TARGET_TMPDIR"
}

/// Whether `name` is part of the key.
pub fn is_keyed(name: &str, extra_env: &[String]) -> bool {
    (name.starts_with("CARGO_") && !is_cargo_config(name))
        || name == "CARGO"
        || name == "OUT_DIR"
        || TOOL_VARS.contains(&name)
        || extra_env.iter().any(|e| e == name)
}

/// Variables that C toolchains and `pkg-config` read, by name or as a prefix followed
/// by `_` (`CC_x86_64_unknown_linux_gnu`, `CFLAGS_...`), also behind `TARGET_`/`HOST_`.
const C_TOOL_VARS: &[&str] = &[
    "CC",
    "CXX",
    "AR",
    "RANLIB",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "ARFLAGS",
    "CRATE_CC_NO_DEFAULTS",
];

/// Whether `name` is part of a build-script run's key: everything [`is_keyed`] takes,
/// the variables cargo sets only for build scripts (`TARGET`, `HOST`, `PROFILE`,
/// `OPT_LEVEL`, `DEBUG`, `RUSTC`, `RUSTDOC`, `RUSTC_LINKER`, `CARGO_ENCODED_RUSTFLAGS`,
/// the wrappers), the `DEP_<links>_<key>` metadata of dependencies' build scripts, the
/// C toolchain's variables and `PKG_CONFIG*`. `NUM_JOBS` is left out:
/// it sets parallelism, not results, and differs from one machine to the next.
pub fn is_keyed_for_build_script(name: &str, extra_env: &[String]) -> bool {
    const SCRIPT_VARS: &[&str] = &[
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_LINKER",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
    ];
    if is_keyed(name, extra_env)
        || SCRIPT_VARS.contains(&name)
        || name.starts_with("PKG_CONFIG")
        || name.starts_with("DEP_")
    {
        return true;
    }
    let base = name
        .strip_prefix("TARGET_")
        .or_else(|| name.strip_prefix("HOST_"))
        .unwrap_or(name);
    C_TOOL_VARS.iter().any(|v| {
        base == *v
            || base
                .strip_prefix(v)
                .is_some_and(|rest| rest.starts_with('_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_variables_are_keyed_config_is_not() {
        let none: &[String] = &[];
        for v in [
            "CARGO_PKG_VERSION",
            "CARGO_MANIFEST_DIR",
            "OUT_DIR",
            "CARGO",
            "CARGO_TARGET_TMPDIR",
            "RUSTC_BOOTSTRAP",
        ] {
            assert!(is_keyed(v, none), "{v}");
        }
        for v in [
            "CARGO_MAKEFLAGS",
            "CARGO_TERM_COLOR",
            "CARGO_HOME",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
            "PATH",
            "HOME",
        ] {
            assert!(!is_keyed(v, none), "{v}");
        }
        assert!(is_keyed("DATABASE_URL", &["DATABASE_URL".to_string()]));
    }

    #[test]
    fn build_script_variables() {
        let none: &[String] = &[];
        for v in [
            "TARGET",
            "OPT_LEVEL",
            "CARGO_ENCODED_RUSTFLAGS",
            "CC",
            "CFLAGS_x86_64_unknown_linux_gnu",
            "TARGET_CC",
            "PKG_CONFIG_PATH",
            "CARGO_CFG_TARGET_OS",
        ] {
            assert!(is_keyed_for_build_script(v, none), "{v}");
        }
        for v in ["NUM_JOBS", "CARGO_MAKEFLAGS", "CCACHE_DIR", "PATH", "HOME"] {
            assert!(!is_keyed_for_build_script(v, none), "{v}");
        }
    }
}
