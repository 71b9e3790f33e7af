//! The one error type of settings validation, for every binary: a message names the variable and
//! the value it got, so an operator can fix a deployment from the log line alone.

/// A setting that keeps a binary from starting.
///
/// Never built from a secret's value: the secret settings are only ever checked for presence
/// ([`ConfigError::Missing`]); a [`crate::secret::Secret`] given as `value` would print
/// `[redacted]` anyway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value is outside what the setting accepts.
    #[error("{name} must be {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        expected: String,
        value: String,
    },
    /// The setting must be given in this situation (`when` says which, e.g. "when APP_ENV=production").
    #[error("{name} must be set {when}")]
    Missing { name: &'static str, when: String },
}

impl ConfigError {
    pub fn invalid(name: &'static str, expected: impl Into<String>, value: impl ToString) -> Self {
        ConfigError::Invalid {
            name,
            expected: expected.into(),
            value: value.to_string(),
        }
    }

    pub fn missing(name: &'static str, when: impl Into<String>) -> Self {
        ConfigError::Missing {
            name,
            when: when.into(),
        }
    }

    /// The variable at fault.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigError::Invalid { name, .. } | ConfigError::Missing { name, .. } => name,
        }
    }
}

/// `Err(Invalid)` unless `value` has a non-blank character.
pub fn not_blank(name: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::invalid(name, "non-empty", value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_variable_and_the_value() {
        assert_eq!(
            ConfigError::invalid("BATCH_MAX_ROWS", "at least 1", 0).to_string(),
            "BATCH_MAX_ROWS must be at least 1, got \"0\""
        );
        assert_eq!(
            ConfigError::missing("MQTT_HOST", "when APP_ENV=production").to_string(),
            "MQTT_HOST must be set when APP_ENV=production"
        );
        assert_eq!(ConfigError::missing("X", "").name(), "X");
    }

    #[test]
    fn a_secret_value_stays_redacted() {
        let e = ConfigError::invalid("P", "short", crate::secret::Secret::new("hunter2"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn blank_values_are_rejected() {
        assert_eq!(not_blank("K", "x"), Ok(()));
        assert_eq!(
            not_blank("K", " "),
            Err(ConfigError::invalid("K", "non-empty", " "))
        );
    }
}
