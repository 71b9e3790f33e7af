//! sck-decoder: Kafka -> ClickHouse. Not built yet: issue 3 fills this crate.
//! The binary exists so the workspace layout is final; it refuses to run rather than pretend.

fn main() -> std::process::ExitCode {
    eprintln!("sck-decoder is not implemented yet (tracked in issue 3)");
    std::process::ExitCode::from(2)
}
