//! The `keystamp` command; everything lives in the library (`keystamp::cli`).

fn main() -> std::process::ExitCode {
    keystamp::cli::main()
}
