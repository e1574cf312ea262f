//! The query parameters every keyset-paged list takes the same way (`limit`, an id to start
//! after, an id filter): parsed once here, each container turning a [`QueryProblem`] into its
//! own error (400 `invalid_query` / `invalid_limit`).

/// What is wrong with a query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryProblem {
    /// Not of the parameter's form: `invalid_query`.
    Invalid {
        parameter: &'static str,
        message: String,
    },
    /// A whole number outside `1..=max`: `invalid_limit`.
    LimitOutOfRange { max: u32 },
}

/// At most this many bytes of a client's value go into a message.
const ECHO_MAX: usize = 64;

fn prefix(value: &str) -> &str {
    if value.len() <= ECHO_MAX {
        return value;
    }
    let mut end = ECHO_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// `limit`: absent or empty → `default`; an integer (optional sign, digits) in `1..=max` → it;
/// an integer out of range, however large → [`QueryProblem::LimitOutOfRange`]; anything else →
/// [`QueryProblem::Invalid`].
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, QueryProblem> {
    let raw = match raw {
        None | Some("") => return Ok(default),
        Some(raw) => raw,
    };
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryProblem::Invalid {
            parameter: "limit",
            message: format!("limit `{}` is not a whole number (1 to {max})", prefix(raw)),
        });
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(QueryProblem::LimitOutOfRange { max }),
    }
}

/// An id parameter: absent or empty → none; otherwise a UUID (`what` it names, e.g. "a customer
/// id"; `hint` ends the message), taken in its canonical lowercase form since ids compare as
/// strings.
pub fn uuid(
    parameter: &'static str,
    what: &str,
    hint: &str,
    raw: Option<String>,
) -> Result<Option<String>, QueryProblem> {
    match raw.filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(raw) => match uuid::Uuid::parse_str(&raw) {
            Ok(id) => Ok(Some(id.hyphenated().to_string())),
            Err(_) => Err(QueryProblem::Invalid {
                parameter,
                message: format!(
                    "{parameter} `{}` is not {what} (a UUID){hint}",
                    prefix(&raw)
                ),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_ids_parse_as_documented() {
        assert_eq!(limit(None, 50, 500), Ok(50));
        assert_eq!(limit(Some(""), 50, 500), Ok(50));
        assert_eq!(limit(Some("+7"), 50, 500), Ok(7));
        assert_eq!(
            limit(Some("-1"), 50, 500),
            Err(QueryProblem::LimitOutOfRange { max: 500 })
        );
        assert_eq!(
            limit(Some("99999999999999999999"), 50, 500),
            Err(QueryProblem::LimitOutOfRange { max: 500 })
        );
        assert!(matches!(
            limit(Some("1.5"), 50, 500),
            Err(QueryProblem::Invalid {
                parameter: "limit",
                ..
            })
        ));
        assert_eq!(uuid("after", "an id", "", Some(String::new())), Ok(None));
        assert_eq!(
            uuid(
                "after",
                "an id",
                "",
                Some("01939D2E-0000-7000-8000-00000000000A".into())
            ),
            Ok(Some("01939d2e-0000-7000-8000-00000000000a".into()))
        );
        let long = "x".repeat(300);
        let Err(QueryProblem::Invalid { message, .. }) = uuid("after", "an id", "!", Some(long))
        else {
            panic!("refused");
        };
        assert!(
            message.len() < 120 && message.ends_with("(a UUID)!"),
            "{message}"
        );
    }
}
