//! `--device N|all`: which devices a command runs on. A flag group of the command-line layer
//! (`crate::cli`), parsed before anything runs; [`DeviceSel::resolve`] turns it into ordinals once
//! the driver says how many devices there are. May import: `error`.

use crate::error::{Error, Result};

/// `--device N` or `--device all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSel {
    One(i32),
    All,
}

impl DeviceSel {
    pub fn parse(s: &str) -> std::result::Result<DeviceSel, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") {
            return Ok(DeviceSel::All);
        }
        t.parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .map(DeviceSel::One)
            .ok_or_else(|| format!("device `{s}` is not a device number: give 0, 1, ... or `all`"))
    }

    /// The ordinals this selection names on a host with `count` devices.
    pub fn resolve(self, count: i32) -> Result<Vec<i32>> {
        match self {
            // The request was fine (the default device included); the machine has no GPU: exit 1.
            DeviceSel::All | DeviceSel::One(_) if count <= 0 => Err(Error::Failed(
                "no CUDA device found: this command needs a GPU".into(),
            )),
            DeviceSel::All => Ok((0..count).collect()),
            DeviceSel::One(n) if n < count => Ok(vec![n]),
            DeviceSel::One(n) => Err(Error::usage(format!(
                "device {n} does not exist: this host has {count} CUDA device{} (0..{})",
                if count == 1 { "" } else { "s" },
                count - 1
            ))),
        }
    }
}

/// The device-selection flag group: `--device N` or `--device all` (default 0), for commands that
/// run on one device or on each in turn. Flatten it with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Device ordinal, or `all`.
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = DeviceSel::parse)]
    pub device: DeviceSel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_selection_parses_and_resolves() {
        assert_eq!(DeviceSel::parse(" ALL "), Ok(DeviceSel::All));
        assert_eq!(DeviceSel::parse("1"), Ok(DeviceSel::One(1)));
        assert!(DeviceSel::parse("-1").is_err());
        assert!(DeviceSel::parse("gpu0").unwrap_err().contains("gpu0"));
        assert_eq!(DeviceSel::All.resolve(2).unwrap(), vec![0, 1]);
        assert_eq!(DeviceSel::One(1).resolve(2).unwrap(), vec![1]);
        // A device that does not exist is the user's input (exit 2); no GPU at all is the
        // machine's (exit 1).
        assert_eq!(DeviceSel::One(2).resolve(2).unwrap_err().exit_code(), 2);
        assert_eq!(DeviceSel::All.resolve(0).unwrap_err().exit_code(), 1);
    }
}
