//! sixboot: one binary that network-boots machines into IPv6-only networks.
//! `main` only parses the command line; `cli` does the work.

fn main() -> std::process::ExitCode {
    sixboot::cli::main()
}
