//! `--print-config`: a [`Config`] written back as `aserve.toml`. Loading the
//! output as a config file gives the same `Config`, so it doubles as a way
//! to freeze a configuration assembled from flags and the environment.
//!
//! Each setting is written by its own [`crate::setting::Field`], in the
//! order of the list of settings. "Off" values are written as the setting's
//! off value (`0`), and settings that are unset (`pid`, `access_logfile`,
//! …) are left out, since TOML has no null.

use toml::Table;

use crate::Config;
use crate::settings::SETTINGS;

impl Config {
    /// The configuration as `aserve.toml` text, in the documented key order.
    pub fn to_toml(&self) -> String {
        // Fields reach their place through `&mut` lenses: use a copy.
        let mut scratch = self.clone();
        let mut table = Table::new();
        for s in SETTINGS {
            if let Some(value) = s.field.print(&mut scratch) {
                table.insert(s.key.to_string(), value);
            }
        }
        table.to_string()
    }
}
