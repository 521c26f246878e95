//! The kernel command line options of SPEC section 7 (`seedpart.device=`, `seedpart.disable`,
//! `seedpart.nogrow`). Command-line flags win over these.

/// Options found on the kernel command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelOptions {
    pub device: Option<String>,
    pub disable: bool,
    pub nogrow: bool,
}

/// Splits a kernel command line the way the kernel does: on spaces, with double quotes
/// grouping (`seedpart.device="LABEL=my drive"`).
fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses the options; the last occurrence of a repeated option wins, as for the kernel's own.
pub fn parse(cmdline: &str) -> KernelOptions {
    let mut o = KernelOptions::default();
    for w in words(cmdline) {
        let (key, value) = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w.clone(), None),
        };
        let flag = |v: &Option<String>| !matches!(v.as_deref(), Some("0" | "no" | "false"));
        match key.as_str() {
            "seedpart.device" => o.device = value.filter(|v| !v.is_empty()),
            "seedpart.disable" => o.disable = flag(&value),
            "seedpart.nogrow" => o.nogrow = flag(&value),
            _ => {}
        }
    }
    o
}

/// Reads `/proc/cmdline`; an unreadable one (a container, a test) means no options.
pub fn read() -> KernelOptions {
    match std::fs::read_to_string("/proc/cmdline") {
        Ok(s) => parse(&s),
        Err(e) => {
            log::debug!("/proc/cmdline: {e}; no kernel command line options");
            KernelOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_options() {
        let o = parse(
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro seedpart.device=PARTLABEL=config-v2 seedpart.nogrow quiet",
        );
        assert_eq!(o.device.as_deref(), Some("PARTLABEL=config-v2"));
        assert!(o.nogrow);
        assert!(!o.disable);
        let o = parse("seedpart.device=\"LABEL=my drive\" seedpart.disable=1 seedpart.nogrow=0");
        assert_eq!(o.device.as_deref(), Some("LABEL=my drive"));
        assert!(o.disable && !o.nogrow);
        assert_eq!(parse("seedpart.device= x").device, None);
        assert_eq!(parse("seedpart.devices=/dev/sda").device, None);
    }
}
