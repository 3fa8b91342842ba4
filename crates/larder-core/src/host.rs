//! What `native` means on this machine, for keys.
//!
//! `-C target-cpu=native` (rustc) and `-march=native`, `-mtune=native`, `-mcpu=native`
//! (C compilers) generate code for the CPU of the machine that compiles. Keyed as the
//! literal word, two machines with different CPUs sharing a remote would get each
//! other's code (an AVX-512 binary on a machine without it). An invocation that asks
//! for `native` is keyed by the CPU it resolves to: the identification and feature
//! flags of the first processor in `/proc/cpuinfo` ([`native_cpu`]). Machines with the
//! same CPU model and features share entries; others do not.

use std::sync::OnceLock;

use larder_digest::{Digest, KeyHasher};

/// The `/proc/cpuinfo` fields that say which CPU this is and what it can do (x86:
/// vendor, family, model, flags; Arm: implementer, architecture, part, features).
const CPU_FIELDS: &[&str] = &[
    "vendor_id",
    "cpu family",
    "model",
    "model name",
    "flags",
    "CPU implementer",
    "CPU architecture",
    "CPU variant",
    "CPU part",
    "Features",
];

/// Whether rustc arguments ask for code for this machine's CPU.
pub fn rustc_wants_native(args: &[String]) -> bool {
    args.iter().any(|a| a.ends_with("target-cpu=native"))
}

/// Whether C compiler arguments ask for code for this machine's CPU.
pub fn c_wants_native(args: &[String]) -> bool {
    args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-march=native" | "-mtune=native" | "-mcpu=native"
        )
    })
}

/// The digest of this machine's CPU, or `None` if `/proc/cpuinfo` cannot be read (then
/// such an invocation is not cached).
pub fn native_cpu() -> Option<Digest> {
    static CPU: OnceLock<Option<Digest>> = OnceLock::new();
    *CPU.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .map(|t| cpu_digest(&t))
    })
}

/// The digest of the first processor's identification and features in a
/// `/proc/cpuinfo` text.
fn cpu_digest(cpuinfo: &str) -> Digest {
    let first = cpuinfo.split("\n\n").next().unwrap_or_default();
    let mut h = KeyHasher::new();
    h.field("version", "larder-native-cpu-v1");
    for line in first.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if CPU_FIELDS.contains(&name) {
            h.field("cpu-field", name).field("cpu-value", value.trim());
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon\ncpu MHz\t\t: 2000.1\nflags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\ncpu MHz\t\t: 1999.9\n";

    #[test]
    fn another_cpu_is_another_native() {
        let without_avx512 = A.replace(" avx512f", "");
        assert_ne!(cpu_digest(A), cpu_digest(&without_avx512));
        // The clock speed and other processors' lines do not matter.
        assert_eq!(cpu_digest(A), cpu_digest(&A.replace("2000.1", "2400.0")));
        assert!(native_cpu().is_some(), "this machine's /proc/cpuinfo");
    }

    #[test]
    fn native_is_recognised_in_arguments() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(rustc_wants_native(&v(&["-C", "target-cpu=native"])));
        assert!(rustc_wants_native(&v(&["-Ctarget-cpu=native"])));
        assert!(!rustc_wants_native(&v(&["-C", "target-cpu=skylake"])));
        assert!(c_wants_native(&v(&["-O2", "-march=native"])));
        assert!(!c_wants_native(&v(&["-march=x86-64-v3"])));
    }
}
