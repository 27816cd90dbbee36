//! Command line: `serve`, `check`, `explain`.
use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
