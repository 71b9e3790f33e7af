//! sck-loadtest: device simulator and end-to-end verifier. Not built yet: issue 4 fills it.

fn main() -> std::process::ExitCode {
    eprintln!("sck-loadtest is not implemented yet (tracked in issue 4)");
    std::process::ExitCode::from(2)
}
