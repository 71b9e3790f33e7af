//! MQTT subscription filter syntax (MQTT 5 §4.7 and §4.8.2), checked before a filter reaches a
//! broker: a broker answers a bad filter with a SUBACK failure long after start-up, so a service
//! checks its filters with this pure function while validating its settings instead.

/// Longest filter MQTT can carry: a UTF-8 string is prefixed by a two-byte length.
pub const MAX_FILTER_BYTES: usize = 65_535;

const SHARE_PREFIX: &str = "$share/";

/// Why a subscription filter is not valid MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("a filter must not be empty")]
    Empty,
    #[error("a filter is at most {MAX_FILTER_BYTES} bytes")]
    TooLong,
    #[error("a filter must not contain NUL")]
    Nul,
    #[error("`#` must be alone in the last level")]
    MultiLevelWildcard,
    #[error("`+` must be alone in its level")]
    SingleLevelWildcard,
    #[error("`$share/<group>/<filter>` needs a non-empty group without `+` or `#`")]
    ShareGroup,
}

/// Checks one subscription filter: plain (`a/+/b/#`) or shared (`$share/<group>/<filter>`).
///
/// Levels may be empty (`a//b`, `/`); other `$`-prefixed filters (`$SYS/#`, EMQX's
/// `$queue/<filter>`) are plain filters to this check.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    if filter.len() > MAX_FILTER_BYTES {
        return Err(FilterError::TooLong);
    }
    if filter.contains('\0') {
        return Err(FilterError::Nul);
    }
    let plain = match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            let (group, inner) = rest.split_once('/').ok_or(FilterError::ShareGroup)?;
            check_share_group(group)?;
            inner
        }
        None => filter,
    };
    check_plain(plain)
}

/// Checks the `<group>` of `$share/<group>/<filter>`: not empty, no `/`, `+` or `#`.
pub fn check_share_group(group: &str) -> Result<(), FilterError> {
    if group.is_empty() || group.contains(['/', '+', '#']) {
        return Err(FilterError::ShareGroup);
    }
    Ok(())
}

/// A filter without a `$share/<group>/` prefix.
fn check_plain(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    let levels = filter.split('/').count();
    for (i, level) in filter.split('/').enumerate() {
        match level {
            "+" => {}
            "#" if i + 1 == levels => {}
            l if l.contains('#') => return Err(FilterError::MultiLevelWildcard),
            l if l.contains('+') => return Err(FilterError::SingleLevelWildcard),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_filters() {
        for f in [
            "a",
            "#",
            "+",
            "/",
            "a//b",
            "a/+/b",
            "+/+",
            "a/#",
            "/#",
            "+/#",
            "device/sck/+/readings/raw",
            "bridge/device/inventory",
            "$SYS/#",
            "$queue/device/sck/+/readings",
            "$share/g/a/#",
            "$share/sck-bridge/device/sck/+/readings",
            "$share/g/#",
            "$share/g//",
            "é/ü/+",
        ] {
            assert_eq!(check_filter(f), Ok(()), "{f:?}");
        }
        let longest = "a".repeat(MAX_FILTER_BYTES);
        assert_eq!(check_filter(&longest), Ok(()));
    }

    #[test]
    fn rejects_invalid_filters() {
        use FilterError::*;
        for (f, want) in [
            ("", Empty),
            ("a/#/b", MultiLevelWildcard),
            ("#/", MultiLevelWildcard),
            ("a#", MultiLevelWildcard),
            ("a/b#", MultiLevelWildcard),
            ("##", MultiLevelWildcard),
            ("a+/b", SingleLevelWildcard),
            ("a/+b", SingleLevelWildcard),
            ("++", SingleLevelWildcard),
            ("a/\0", Nul),
            ("$share/", ShareGroup),
            ("$share/g", ShareGroup),
            ("$share//a", ShareGroup),
            ("$share/g+/a", ShareGroup),
            ("$share/#/a", ShareGroup),
            ("$share/g/", Empty),
            ("$share/g/a/#/b", MultiLevelWildcard),
            ("$share/g/a+", SingleLevelWildcard),
        ] {
            assert_eq!(check_filter(f), Err(want), "{f:?}");
        }
    }

    #[test]
    fn share_groups() {
        assert_eq!(check_share_group("sck-bridge"), Ok(()));
        assert_eq!(check_share_group("$g.1"), Ok(()));
        for bad in ["", "a/b", "g+", "#"] {
            assert_eq!(
                check_share_group(bad),
                Err(FilterError::ShareGroup),
                "{bad}"
            );
        }
    }

    #[test]
    fn length_counts_bytes_not_characters() {
        // 'é' is two bytes in UTF-8: 32,768 of them are 65,536 bytes.
        let long = "é".repeat(32_768);
        assert_eq!(check_filter(&long), Err(FilterError::TooLong));
        assert_eq!(check_filter(&"é".repeat(32_767)), Ok(()));
        // The limit is on the whole filter, `$share/<group>/` included (9 bytes here).
        let shared = |n| format!("$share/g/{}", "a".repeat(n));
        assert_eq!(check_filter(&shared(MAX_FILTER_BYTES - 9)), Ok(()));
        assert_eq!(
            check_filter(&shared(MAX_FILTER_BYTES - 8)),
            Err(FilterError::TooLong)
        );
    }

    #[test]
    fn the_default_filters_are_valid() {
        for f in crate::topic::default_filters() {
            assert_eq!(check_filter(&f), Ok(()), "{f}");
            assert_eq!(
                check_filter(&format!("$share/sck-bridge/{f}")),
                Ok(()),
                "{f}"
            );
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            FilterError::MultiLevelWildcard.to_string(),
            "`#` must be alone in the last level"
        );
        assert_eq!(
            FilterError::TooLong.to_string(),
            "a filter is at most 65535 bytes"
        );
    }
}
