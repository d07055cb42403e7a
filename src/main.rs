//! The `portcullis` binary: see `portcullis --help` and `docs/cli.md`.

fn main() -> std::process::ExitCode {
    portcullis::cli::run()
}
