//! `kmscks`: the AWS-CLI-shaped command line (see `kmscks::cli`).

/// mimalloc: the data plane hands out many small, short-lived buffers (blobs, data keys) from
/// several threads; glibc malloc spends a fifth of a batch's time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kmscks::cli::main()
}
