//! What a failed ClickHouse request means: will it pass by itself, or does it need an operator?
//!
//! Like Vector's `ClickhouseRetryLogic`, by the server's exception code (`Code: N` at the start
//! of the error body; ClickHouse 18.16 writes `Code: 193, e.displayText() = …`, newer servers
//! `Code: 516. DB::Exception: …`) and, when there is no body, the HTTP status. Unlike Vector,
//! nothing is ever dropped: a *transient* error is retried with backoff, a *permanent* one
//! (the schema or the credentials are wrong) blocks the writer, which keeps its rows, says so
//! (readiness, a metric, a log line) and retries slowly until an operator fixes it.

use clickhouse::error::Error;

/// The class of a failed ClickHouse request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// Network errors, timeouts, too many parts, memory or query limits, a server restarting,
    /// and anything not known to be permanent: retry with backoff.
    Transient,
    /// The table does not match the rows (a missing column, table or database, a changed
    /// type): needs a migration or an undo of a manual ALTER.
    Schema,
    /// Authentication or authorisation refused (wrong user or password, missing grant).
    Access,
}

impl ErrorClass {
    /// Transient errors pass by themselves; the others need an operator.
    pub fn is_permanent(self) -> bool {
        self != ErrorClass::Transient
    }

    /// The permanent classes, for metric labels.
    pub const PERMANENT: [ErrorClass; 2] = [ErrorClass::Schema, ErrorClass::Access];

    /// Label value: `transient`, `schema` or `access`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Schema => "schema",
            ErrorClass::Access => "access",
        }
    }
}

/// Classifies an error of the clickhouse client.
pub fn classify(error: &Error) -> ErrorClass {
    match error {
        Error::BadResponse(body) => classify_response(body),
        // The client's own check of the rows against the table (CLICKHOUSE_VALIDATION).
        Error::SchemaMismatch(_) => ErrorClass::Schema,
        _ => ErrorClass::Transient,
    }
}

/// Classifies a server error body: by its exception code, else by a bare HTTP status line
/// (`401 Unauthorized`, what the client reports for an empty body).
pub fn classify_response(body: &str) -> ErrorClass {
    if let Some(code) = exception_code(body) {
        return classify_code(code);
    }
    match http_status(body) {
        Some(401 | 403) => ErrorClass::Access,
        Some(404) => ErrorClass::Schema,
        _ => ErrorClass::Transient,
    }
}

/// ClickHouse exception codes (`src/Common/ErrorCodes.cpp`) that no retry will fix.
pub fn classify_code(code: u32) -> ErrorClass {
    match code {
        16  // NO_SUCH_COLUMN_IN_TABLE (an INSERT naming a dropped column)
        | 47  // UNKNOWN_IDENTIFIER
        | 53  // TYPE_MISMATCH
        | 60  // UNKNOWN_TABLE
        | 81  // UNKNOWN_DATABASE
        | 117 // INCORRECT_DATA (rows that do not parse as the column types)
        => ErrorClass::Schema,
        164 // READONLY (a user with readonly=1)
        | 192 // UNKNOWN_USER (servers before 20.x)
        | 193 // WRONG_PASSWORD (servers before 20.x)
        | 194 // REQUIRED_PASSWORD
        | 195 // IP_ADDRESS_NOT_ALLOWED
        | 291 // DATABASE_ACCESS_DENIED
        | 497 // ACCESS_DENIED (missing grant)
        | 516 // AUTHENTICATION_FAILED (current servers: unknown user or wrong password)
        => ErrorClass::Access,
        // Everything else, among them TOO_MANY_PARTS (252), MEMORY_LIMIT_EXCEEDED (241),
        // TOO_MANY_SIMULTANEOUS_QUERIES (202), TIMEOUT_EXCEEDED (159), TABLE_IS_READ_ONLY (242).
        _ => ErrorClass::Transient,
    }
}

/// The server's exception code, when the error carries one.
pub fn server_code(error: &Error) -> Option<u32> {
    match error {
        Error::BadResponse(body) => exception_code(body),
        _ => None,
    }
}

/// `N` of the first `Code: N` in a response body.
pub(crate) fn exception_code(body: &str) -> Option<u32> {
    let (_, rest) = body.split_once("Code: ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// `N` of a body that is only an HTTP status line such as `503 Service Unavailable`.
fn http_status(body: &str) -> Option<u16> {
    let (code, _) = body.trim().split_once(' ').unwrap_or((body.trim(), ""));
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn server_errors_by_code_and_status() {
        let cases: &[(&str, ErrorClass)] = &[
            // What ClickHouse 18.16 answers (checked against the local stack with curl).
            ("Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Exception", Access),
            ("Code: 192, e.displayText() = DB::Exception: Unknown user nobody, e.what() = DB::Exception", Access),
            ("Code: 16, e.displayText() = DB::Exception: No such column format in table readings, e.what() = DB::Exception", Schema),
            ("Code: 60, e.displayText() = DB::Exception: Table db.nope doesn't exist., e.what() = DB::Exception", Schema),
            ("Code: 81, e.displayText() = DB::Exception: Database nodb doesn't exist, e.what() = DB::Exception", Schema),
            // Current servers.
            ("Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 25.3.2.39 (official build))", Access),
            ("Code: 497. DB::Exception: sck: Not enough privileges. To execute this query, it's necessary to have the grant INSERT(format) ON sck.readings. (ACCESS_DENIED)", Access),
            ("Code: 47. DB::Exception: Missing columns: 'format' while processing query. (UNKNOWN_IDENTIFIER)", Schema),
            ("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)", Schema),
            ("Code: 117. DB::Exception: Cannot parse input. (INCORRECT_DATA)", Schema),
            ("Code: 164. DB::Exception: sck: Cannot execute query in readonly mode. (READONLY)", Access),
            ("Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)", Transient),
            ("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)", Transient),
            ("Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)", Transient),
            ("Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)", Transient),
            ("Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)", Transient),
            // An empty body: the client reports the exception-code header, or the status.
            ("Code: 516", Access),
            ("401 Unauthorized", Access),
            ("403 Forbidden", Access),
            ("404 Not Found", Schema),
            ("500 Internal Server Error", Transient),
            ("502 Bad Gateway", Transient),
            ("503 Service Unavailable", Transient),
            ("429 Too Many Requests", Transient),
            // Something a proxy made up.
            ("<html>bad gateway</html>", Transient),
            ("Code: x", Transient),
            ("", Transient),
        ];
        for (body, want) in cases {
            assert_eq!(classify_response(body), *want, "{body}");
            assert_eq!(
                classify(&Error::BadResponse(body.to_string())),
                *want,
                "{body}"
            );
        }
    }

    #[test]
    fn client_side_errors() {
        let network = Error::Network("connection refused".into());
        assert_eq!(classify(&network), Transient);
        assert_eq!(classify(&Error::TimedOut), Transient);
        assert_eq!(
            classify(&Error::SchemaMismatch("no column x".into())),
            Schema
        );
        assert_eq!(classify(&Error::Custom("serde".into())), Transient);
        assert_eq!(server_code(&network), None);
    }

    #[test]
    fn codes_and_labels() {
        assert_eq!(
            server_code(&Error::BadResponse(
                "Code: 193, e.displayText() = DB::Exception: Wrong password".into()
            )),
            Some(193)
        );
        assert_eq!(
            server_code(&Error::BadResponse("Code: 16. DB::Exception".into())),
            Some(16)
        );
        assert_eq!(
            server_code(&Error::BadResponse("503 Service Unavailable".into())),
            None
        );
        assert!(!Transient.is_permanent() && Schema.is_permanent() && Access.is_permanent());
        let labels: Vec<&str> = ErrorClass::PERMANENT.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, ["schema", "access"]);
    }
}
