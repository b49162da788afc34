//! `kmscks`: the AWS-CLI-shaped command line (see `kmscks::cli`).

fn main() -> std::process::ExitCode {
    kmscks::cli::main()
}
