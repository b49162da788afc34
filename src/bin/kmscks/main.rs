//! `kmscks`: the AWS-CLI-shaped command line ([`cli`]) and its load generators ([`loadgen`] in
//! process, [`loadgen_socket`] over the daemon's socket, [`loadgen_http`] over any AWS-JSON
//! KMS endpoint), which `kmscks bench` runs. They live
//! on the binary's side so that the library does not export a benchmark harness; they use only
//! the library's public surface.

mod cli;
mod loadgen;
mod loadgen_beside;
mod loadgen_http;
mod loadgen_socket;
mod loadgen_turns;
mod proc_cpu;
mod scale;

/// mimalloc: the data plane hands out many small, short-lived buffers (blobs, data keys) from
/// several threads; glibc malloc spends a fifth of a batch's time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
