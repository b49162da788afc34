//! The handle, `kmscks_client`, and how it is made and closed: in this process
//! (`kmscks_open`: a [`Kms`]) or through the daemon (`kmscks_connect`: a [`Client`]). Both are
//! an [`ops::Backend`](crate::ops::Backend), and every other function calls only that, through
//! [`kmscks_client::call`] (the hot cryptographic calls through the backend's borrowed methods,
//! [`kmscks_client::backend`]).

use std::ffi::c_char;

use super::boundary::{guard, optional_text, put, CResult};
use super::result::{kmscks_result, Failure};
use crate::ops::{Backend, Request, Response};
use crate::{Client, Kms, KmsConfig};

/// A handle to kmscks: an instance running in this process, or a connection to `kmscksd`.
/// Opaque. Safe to use from many threads at once; `kmscks_close` it exactly once, after every
/// other call on it has returned.
pub struct kmscks_client {
    backend: Box<dyn Backend + Send + Sync>,
}

impl kmscks_client {
    /// Performs one operation.
    #[inline]
    pub(super) fn call(&self, request: &Request) -> CResult<Response> {
        Ok(self.backend.call(request)?)
    }

    /// The backend itself, for the hot calls' borrowed methods (`Backend::encrypt_borrowed`
    /// …).
    #[inline]
    pub(super) fn backend(&self) -> &(dyn Backend + Send + Sync) {
        &*self.backend
    }
}

/// Answers the response variant an operation must answer with, or `KMSCKS_INTERNAL`.
macro_rules! expect_response {
    ($response:expr, $op:ident) => {
        match $response {
            $crate::ops::Response::$op(r) => Ok(r),
            other => Err($crate::capi::result::Failure::internal(format!(
                "{} was answered with a {} response",
                stringify!($op),
                other.op().name()
            ))),
        }
    };
}
pub(super) use expect_response;

/// Options of `kmscks_open_with`. Fill with `kmscks_open_options_init()` first (it sets
/// `struct_size` and the defaults), then change what you need: fields added in later versions
/// go at the end, and `struct_size` tells kmscks which ones the caller knows. A program built
/// against an older header is accepted (the fields it does not know keep their defaults), as
/// is one built against a newer header (the fields this library does not know are ignored);
/// a `struct_size` smaller than the first released struct's is `KMSCKS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_open_options {
    /// `sizeof(kmscks_open_options)` as the caller's header knew it.
    pub struct_size: usize,
    /// PBKDF2 iterations for the CloudHSM user password hashes made from now on. 0: the
    /// default (600,000, about 0.3 s per hash). Tests that make many users or connections may
    /// lower it (values below 1,000 count as 1,000); never for data worth protecting.
    pub hsm_password_iterations: u32,
    /// How long a custom key store stays CONNECTING or DISCONNECTING, in milliseconds.
    /// 0: the default (20 ms).
    pub connect_delay_ms: u32,
}

/// Fills `options` with the defaults and its `struct_size`. NULL does nothing.
///
/// # Safety
/// `options` is NULL or valid for a write of a `kmscks_open_options`.
#[no_mangle]
pub unsafe extern "C" fn kmscks_open_options_init(options: *mut kmscks_open_options) {
    if let Some(o) = super::boundary::optional_out(options) {
        // SAFETY: non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_open_options::defaults()) };
    }
}

/// Runs kmscks inside this process, on the data directory `data_dir` (created if missing, as
/// `kmscksd --data-dir` does; its key files are sealed with the passphrase of
/// `KMSCKS_PASSPHRASE_FILE` or `KMSCKS_PASSPHRASE` when set), or with nothing on disk when
/// `data_dir` is NULL. A data directory is used by one process at a time:
/// `KMSCKS_STORE_IN_USE` when another holds it.
///
/// # Safety
/// `data_dir` is NULL or a NUL-terminated string; `out` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn kmscks_open(
    data_dir: *const c_char,
    out: *mut *mut kmscks_client,
) -> kmscks_result {
    // SAFETY: forwarded contract; NULL options are the defaults.
    unsafe { kmscks_open_with(data_dir, std::ptr::null(), out) }
}

/// `kmscks_open` with options (NULL: the defaults). A `struct_size` smaller than the first
/// released `kmscks_open_options`: `KMSCKS_INVALID_ARGUMENT`.
///
/// # Safety
/// As `kmscks_open`; `options` is NULL or a `kmscks_open_options` filled by
/// `kmscks_open_options_init` (at least `struct_size` bytes readable).
#[no_mangle]
pub unsafe extern "C" fn kmscks_open_with(
    data_dir: *const c_char,
    options: *const kmscks_open_options,
    out: *mut *mut kmscks_client,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let dir = unsafe { optional_text(data_dir, "data_dir") }?;
        // SAFETY: caller's contract.
        let config = unsafe { config(options) }?;
        let out = super::boundary::out(out, "out")?;
        let kms = match dir {
            Some(dir) => Kms::open_with(dir, config)?,
            None => Kms::in_memory_with(config),
        };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(out, new_handle(Box::new(kms))) };
        Ok(())
    })
}

/// An options struct C fills and passes by pointer, its first field `struct_size` (the
/// `sizeof` of the struct in the header the caller was built against). The struct only ever
/// grows, by fields appended at the end, so that both older and newer callers can be read.
///
/// Every field must be an integer (valid whatever its bytes), since [`sized`] copies the
/// caller's bytes into it. A field added later must start at or past the end of every earlier
/// layout, tail padding included (insert a `_reserved` field to get there if need be): the
/// caller of an earlier layout passes that padding, uninitialised, as if it held the field.
/// And an init function must not write more than the caller's header declared: a whole struct
/// of this library's layout would overrun the smaller struct of a program built against an
/// earlier header. `kmscks_open_options_init` still writes a whole struct (an assertion below
/// holds its struct at its first size until it changes); `kmscks_connect_options_init` writes
/// only the first layout since `reply_timeout_ms` was added, and the header's macro of that
/// name passes the caller's size to `kmscks_connect_options_init_sized` ([`init_sized`]).
pub(super) trait Options: Sized {
    /// `sizeof` the first released layout of the struct: the smallest `struct_size` accepted
    /// (what a program built against the first header passes). It must never change, even
    /// when fields are added: a program built against that header still passes it.
    const V1_SIZE: usize;
    /// The function that fills the struct, which the refusal of a wrong size names.
    const INIT: &'static str;
    /// The struct as its init function fills it: these defaults stay in the fields a caller
    /// built against an older header does not know.
    fn defaults() -> Self;
}

/// The first released layout of `kmscks_open_options` (kmscks 0.1), kept only for its size,
/// `kmscks_open_options::V1_SIZE`. Never change it: add fields to `kmscks_open_options`.
#[repr(C)]
#[allow(dead_code)] // never made: only its size (and, in tests, its offsets) are read
struct OpenOptionsV1 {
    struct_size: usize,
    hsm_password_iterations: u32,
    connect_delay_ms: u32,
}

impl Options for kmscks_open_options {
    const V1_SIZE: usize = size_of::<OpenOptionsV1>();
    const INIT: &'static str = "kmscks_open_options_init";
    fn defaults() -> Self {
        kmscks_open_options {
            struct_size: size_of::<kmscks_open_options>(),
            hsm_password_iterations: 0,
            connect_delay_ms: 0,
        }
    }
}

/// The first released layout of `kmscks_connect_options` (kmscks 0.1), kept only for its
/// size, `kmscks_connect_options::V1_SIZE`. Never change it: add fields to
/// `kmscks_connect_options`.
#[repr(C)]
#[allow(dead_code)] // never made: only its size (and, in tests, its offsets) are read
struct ConnectOptionsV1 {
    struct_size: usize,
    reply_spin_us: u32,
}

impl Options for kmscks_connect_options {
    const V1_SIZE: usize = size_of::<ConnectOptionsV1>();
    const INIT: &'static str = "kmscks_connect_options_init";
    fn defaults() -> Self {
        let spin = crate::client::DEFAULT_REPLY_SPIN.as_micros();
        kmscks_connect_options {
            struct_size: size_of::<kmscks_connect_options>(),
            // The default is microseconds, far below u32::MAX.
            reply_spin_us: u32::try_from(spin).unwrap_or(MAX_REPLY_SPIN_US),
            reply_timeout_ms: 0,
        }
    }
}

// A struct only grows: today's layout holds the first one (`tests` checks field by field).
const _: () = assert!(size_of::<kmscks_open_options>() >= kmscks_open_options::V1_SIZE);
const _: () = assert!(size_of::<kmscks_connect_options>() >= kmscks_connect_options::V1_SIZE);
// `kmscks_open_options_init` writes a whole struct: it must take the caller's size (as
// `kmscks_connect_options_init_sized` does) before `kmscks_open_options` grows.
const _: () = assert!(size_of::<kmscks_open_options>() == kmscks_open_options::V1_SIZE);

/// A copy of the options at `options`, read as far as both the caller and this library know
/// them: the first `min(struct_size, size_of::<T>())` bytes, over `T::defaults()`. So a caller
/// built against an older header (a smaller `struct_size`) gets the defaults in the fields it
/// does not know, and one built against a newer header (a larger one) has the fields this
/// library does not know ignored. A `struct_size` under the first released layout's
/// (`T::V1_SIZE`) is no caller's: `KMSCKS_INVALID_ARGUMENT` naming it and the smallest
/// accepted.
///
/// # Safety
/// `options` is non-NULL, its first field a `usize` struct_size, and that many bytes readable.
unsafe fn sized<T: Options>(options: *const T) -> CResult<T> {
    // SAFETY: non-NULL; the first field, a usize, is readable by the caller's contract.
    let size = unsafe { options.cast::<usize>().read_unaligned() };
    if size < T::V1_SIZE {
        return Err(Failure::invalid(
            "options",
            format!(
                "struct_size is {size}, below {}, the smallest accepted (fill it with {})",
                T::V1_SIZE,
                T::INIT
            ),
        ));
    }
    let mut value = T::defaults();
    let known = size.min(size_of::<T>());
    // SAFETY: `known` bytes are readable at `options` (known <= struct_size, and struct_size
    // bytes are readable by the caller's contract) and writable in `value` (known <=
    // size_of::<T>()); `value` is a local, so the two do not overlap; bytes need no
    // alignment. The result is a valid `T` whatever was copied: every field is an integer
    // (the `Options` rule), valid for any initialised bytes, and the caller initialised its
    // fields (a field it does not know lies past `known`, so keeps its default).
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            std::ptr::addr_of_mut!(value).cast::<u8>(),
            known,
        );
    }
    Ok(value)
}

/// The configuration `options` asks for.
///
/// # Safety
/// As `kmscks_open_with`'s `options`.
unsafe fn config(options: *const kmscks_open_options) -> CResult<KmsConfig> {
    let mut config = KmsConfig::default();
    if options.is_null() {
        return Ok(config);
    }
    // SAFETY: non-NULL; readable as far as its struct_size by the caller's contract.
    let o = unsafe { sized(options) }?;
    if o.hsm_password_iterations != 0 {
        config.hsm_password_iterations = o.hsm_password_iterations;
    }
    if o.connect_delay_ms != 0 {
        config.connect_delay = std::time::Duration::from_millis(o.connect_delay_ms.into());
    }
    Ok(config)
}

/// Connects to `kmscksd` on `socket_path`, or on the default socket when it is NULL (the one
/// the CLI uses: `$KMSCKS_SOCKET`, else `kmscks.sock` in the first of `$XDG_RUNTIME_DIR/kmscks/`,
/// `/run/user/<euid>/kmscks/`, `~/.local/state/kmscks/` and `/tmp/kmscks-<euid>/` that holds
/// one). Refuses a daemon run by a uid this process does not trust (its own, root, or
/// `KMSCKS_DAEMON_UID`): `KMSCKS_UNTRUSTED_SOCKET`. Nothing listening: `KMSCKS_IO`. Later
/// calls reconnect by themselves after the daemon restarts; a connection the daemon closed
/// while idle costs no call an error.
///
/// # Safety
/// `socket_path` is NULL or a NUL-terminated string; `out` is valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn kmscks_connect(
    socket_path: *const c_char,
    out: *mut *mut kmscks_client,
) -> kmscks_result {
    // SAFETY: forwarded contract; NULL options are the defaults.
    unsafe { kmscks_connect_with(socket_path, std::ptr::null(), out) }
}

/// The longest `reply_spin_us` a `kmscks_connect_options` may ask for: one second. A wait
/// that spins longer holds a core for as long as a sleep and its wake-up would have cost many
/// times over.
pub(super) const MAX_REPLY_SPIN_US: u32 = 1_000_000;

/// Options of `kmscks_connect_with`. Fill with `kmscks_connect_options_init()` first (it sets
/// `struct_size` and the defaults), then change what you need: `struct_size` works as
/// `kmscks_open_options`'s does.
#[repr(C)]
#[derive(Debug)]
pub struct kmscks_connect_options {
    /// `sizeof(kmscks_connect_options)` as the caller's header knew it.
    pub struct_size: usize,
    /// How long a call waiting for its reply keeps checking for it before it sleeps, in
    /// microseconds (at most 1,000,000). `kmscks_connect_options_init` sets the default, 20:
    /// most answers come within it, and the call then costs no wake-up. 0 sleeps at once,
    /// sparing the CPU (many threads waiting on slow calls) at the price of a wake-up, tens of
    /// µs on a small VM, per reply that is not already there.
    pub reply_spin_us: u32,
    /// The longest any wait for the daemon may last, in milliseconds: for a call's answer,
    /// for the daemon to take a request, for it to take a new connection (while its listen
    /// queue is full) and answer that connection's Hello exchange. 0 (the
    /// default): no limit. A wait that runs out fails the call with `KMSCKS_IO` (its outcome
    /// is unknown, as for any lost connection) and drops the connection, so that a daemon that
    /// stopped answering (stopped, wedged) costs a thread an error, not a wait for ever. A
    /// call that asks the daemon to wait (`kmscks_wait_connected`, `kmscks_wait_settled`)
    /// waits its own `timeout_ms` beyond it. (Added in kmscks 0.2: a program built against
    /// 0.1's header gets the default.)
    pub reply_timeout_ms: u64,
}

/// Fills the first released layout of `options` (kmscks 0.1's: `struct_size`, set to that
/// layout's size, and `reply_spin_us`) with the defaults, and nothing past it. NULL does
/// nothing. A program built against this header reaches `kmscks_connect_options_init_sized`
/// through the macro of this name, which passes the size of its struct; this function, which
/// programs built against the first header call, writes no more than their struct holds.
///
/// # Safety
/// `options` is NULL or valid for a write of kmscks 0.1's `kmscks_connect_options`.
#[no_mangle]
pub unsafe extern "C" fn kmscks_connect_options_init(options: *mut kmscks_connect_options) {
    // SAFETY: as the caller's contract says, with the first layout's size.
    unsafe { init_sized(options, kmscks_connect_options::V1_SIZE) }
}

/// Fills the first `size` bytes of `options` with the defaults, `struct_size` set to what was
/// filled (`size`, or this library's struct if that is smaller). NULL, or a `size` smaller
/// than the first released struct, does nothing. Called as
/// `kmscks_connect_options_init(&options)`, the macro passing `sizeof options`.
///
/// # Safety
/// `options` is NULL or valid for a write of `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn kmscks_connect_options_init_sized(
    options: *mut kmscks_connect_options,
    size: usize,
) {
    // SAFETY: the caller's contract.
    unsafe { init_sized(options, size) }
}

/// Writes `T::defaults()` into the first `min(size, size_of::<T>())` bytes at `options`, its
/// `struct_size` saying how many: so that a program built against an older header, whose
/// struct is smaller, never has more written than it holds. Nothing when `options` is NULL or
/// `size` is below the first layout's.
///
/// # Safety
/// `options` is NULL or valid for a write of `size` bytes, its first field a `usize`.
unsafe fn init_sized<T: Options>(options: *mut T, size: usize) {
    if options.is_null() || size < T::V1_SIZE {
        return;
    }
    let filled = size.min(size_of::<T>());
    let value = T::defaults();
    // SAFETY: `filled` bytes are writable at `options` (filled <= size, the caller's contract)
    // and readable in `value` (filled <= size_of::<T>()), a local that cannot overlap it; bytes
    // need no alignment. The first field is the usize struct_size (the `Options` rule), at
    // offset 0 and within `filled` (V1_SIZE holds it).
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::addr_of!(value).cast::<u8>(),
            options.cast::<u8>(),
            filled,
        );
        options.cast::<usize>().write_unaligned(filled);
    }
}

/// `kmscks_connect` with options (NULL: the defaults). A `reply_spin_us` over 1,000,000 or a
/// `struct_size` smaller than the first released `kmscks_connect_options`:
/// `KMSCKS_INVALID_ARGUMENT`.
///
/// # Safety
/// As `kmscks_connect`; `options` is NULL or a `kmscks_connect_options` filled by
/// `kmscks_connect_options_init` (at least `struct_size` bytes readable).
#[no_mangle]
pub unsafe extern "C" fn kmscks_connect_with(
    socket_path: *const c_char,
    options: *const kmscks_connect_options,
    out: *mut *mut kmscks_client,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let path = unsafe { optional_text(socket_path, "socket_path") }?;
        let path = path.map_or_else(crate::client::default_socket, std::path::PathBuf::from);
        // SAFETY: caller's contract.
        let builder = unsafe { connect_options(Client::builder(path), options) }?;
        let out = super::boundary::out(out, "out")?;
        let client = builder.connect()?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(out, new_handle(Box::new(client))) };
        Ok(())
    })
}

/// `builder` with what `options` asks for.
///
/// # Safety
/// As `kmscks_connect_with`'s `options`.
unsafe fn connect_options(
    builder: crate::client::ClientBuilder,
    options: *const kmscks_connect_options,
) -> CResult<crate::client::ClientBuilder> {
    if options.is_null() {
        return Ok(builder);
    }
    // SAFETY: non-NULL; readable as far as its struct_size by the caller's contract.
    let o = unsafe { sized(options) }?;
    if o.reply_spin_us > MAX_REPLY_SPIN_US {
        return Err(Failure::invalid(
            "options",
            format!(
                "reply_spin_us is {}, over the limit of {MAX_REPLY_SPIN_US}",
                o.reply_spin_us
            ),
        ));
    }
    let spin = std::time::Duration::from_micros(o.reply_spin_us.into());
    let limit = std::time::Duration::from_millis(o.reply_timeout_ms);
    Ok(builder.reply_spin(spin).reply_timeout(limit))
}

/// Closes a handle: an in-process instance shuts down (its data directory unlocked), a
/// daemon connection is closed. NULL does nothing. In a child forked after the handle was
/// opened, which refuses to serve from it, closing it releases the child's copy (its data
/// directory and lock among them) without waiting for the parent's threads; until then the
/// child's copy keeps the directory locked.
///
/// # Safety
/// `c` is NULL or a handle not yet closed, with no other call on it in progress or to come.
#[no_mangle]
pub unsafe extern "C" fn kmscks_close(c: *mut kmscks_client) {
    if c.is_null() {
        return;
    }
    // A panic while shutting down (a bug) must not unwind into C; the handle is gone either
    // way.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: made by `new_handle` (Box::into_raw), closed once (caller's contract).
        drop(unsafe { Box::from_raw(c) });
    }));
}

/// The library's version, e.g. `"0.1.0"` (the same as `KMSCKS_VERSION_STRING` in the header
/// the program was compiled with, when header and library match). A static string.
#[no_mangle]
pub extern "C" fn kmscks_version() -> *const c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => panic!("the package version holds no NUL"),
    };
    VERSION.as_ptr()
}

fn new_handle(backend: Box<dyn Backend + Send + Sync>) -> *mut kmscks_client {
    Box::into_raw(Box::new(kmscks_client { backend }))
}

// A handle is shared between threads: its backend must be `Send + Sync`.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<kmscks_client>();
};

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// The failure `sized` gives for `options`, which must be refused.
    fn refusal<T: Options>(options: &T) -> Failure {
        // SAFETY: a live struct, its first field a usize; `sized` reads at most its size.
        match unsafe { sized(options) } {
            Ok(_) => panic!("a struct_size below {} was accepted", T::V1_SIZE),
            Err(failure) => failure,
        }
    }

    #[test]
    fn the_first_released_layouts_are_a_prefix_of_todays_structs() {
        type O = kmscks_open_options;
        assert_eq!(
            offset_of!(OpenOptionsV1, struct_size),
            offset_of!(O, struct_size)
        );
        assert_eq!(
            offset_of!(OpenOptionsV1, hsm_password_iterations),
            offset_of!(O, hsm_password_iterations)
        );
        assert_eq!(
            offset_of!(OpenOptionsV1, connect_delay_ms),
            offset_of!(O, connect_delay_ms)
        );
        type C = kmscks_connect_options;
        assert_eq!(
            offset_of!(ConnectOptionsV1, struct_size),
            offset_of!(C, struct_size)
        );
        assert_eq!(
            offset_of!(ConnectOptionsV1, reply_spin_us),
            offset_of!(C, reply_spin_us)
        );
        // Added past the first layout's end, its tail padding included: a caller of that
        // layout passes the padding, uninitialised, and it must not be read as the field.
        assert!(offset_of!(C, reply_timeout_ms) >= size_of::<ConnectOptionsV1>());
    }

    #[test]
    fn a_struct_size_below_the_first_layout_is_refused_naming_it_and_the_smallest_accepted() {
        for size in [0, 4, kmscks_open_options::V1_SIZE - 1] {
            let mut o = kmscks_open_options::defaults();
            o.struct_size = size;
            let failure = refusal(&o);
            assert_eq!(failure.code, kmscks_result::KMSCKS_INVALID_ARGUMENT);
            let expected = format!(
                "argument options: struct_size is {size}, below {}, the smallest accepted \
                 (fill it with kmscks_open_options_init)",
                kmscks_open_options::V1_SIZE
            );
            assert_eq!(failure.message, expected);
        }
        let mut o = kmscks_connect_options::defaults();
        o.struct_size = kmscks_connect_options::V1_SIZE - 1;
        let failure = refusal(&o);
        assert_eq!(failure.code, kmscks_result::KMSCKS_INVALID_ARGUMENT);
        let expected = format!(
            "struct_size is {}, below {}, the smallest accepted (fill it with \
             kmscks_connect_options_init)",
            kmscks_connect_options::V1_SIZE - 1,
            kmscks_connect_options::V1_SIZE
        );
        assert!(failure.message.contains(&expected), "{}", failure.message);
    }

    #[test]
    fn a_struct_size_of_exactly_the_first_layout_is_accepted_and_only_its_fields_read() {
        let o = kmscks_open_options {
            struct_size: kmscks_open_options::V1_SIZE,
            hsm_password_iterations: 1234,
            connect_delay_ms: 56,
        };
        // SAFETY: a live struct of V1_SIZE bytes or more (the const assertion above).
        let read = unsafe { sized(&o) }.expect("the first layout's size is accepted");
        assert_eq!(read.struct_size, kmscks_open_options::V1_SIZE);
        assert_eq!(read.hsm_password_iterations, 1234);
        assert_eq!(read.connect_delay_ms, 56);

        let o = kmscks_connect_options {
            struct_size: kmscks_connect_options::V1_SIZE,
            reply_spin_us: 789,
            reply_timeout_ms: 1500,
        };
        // SAFETY: as above.
        let read = unsafe { sized(&o) }.expect("the first layout's size is accepted");
        assert_eq!(read.reply_spin_us, 789);
        // Past the first layout: what such a caller passes there is not its own, and is not
        // read. The default stands.
        assert_eq!(read.reply_timeout_ms, 0);
    }

    #[test]
    fn a_larger_struct_size_from_a_newer_header_is_accepted_and_the_known_fields_read() {
        /// A later header's struct: today's, then fields this library does not know (zero,
        /// as its init would leave them, and one set: neither changes what is read).
        #[repr(C)]
        struct Newer {
            known: kmscks_open_options,
            appended: [u64; 3],
        }
        let newer = Newer {
            known: kmscks_open_options {
                struct_size: size_of::<Newer>(),
                hsm_password_iterations: 1000,
                connect_delay_ms: 5,
            },
            appended: [0, 0, u64::MAX],
        };
        // SAFETY: `struct_size` (size_of::<Newer>()) bytes are readable at `newer.known`.
        let read = unsafe { sized(std::ptr::addr_of!(newer).cast::<kmscks_open_options>()) }
            .expect("a newer header's size is accepted");
        assert_eq!(read.struct_size, size_of::<Newer>());
        assert_eq!(read.hsm_password_iterations, 1000);
        assert_eq!(read.connect_delay_ms, 5);
    }

    /// An options struct as a later version of this library would have it: a field `added`
    /// appended to a first layout of `struct_size` and `first`.
    #[repr(C)]
    struct Grown {
        struct_size: usize,
        first: u64,
        added: u64,
    }

    /// `Grown`'s first released layout.
    #[repr(C)]
    #[allow(dead_code)] // its fields are read as `Grown`'s bytes, never by name
    struct GrownV1 {
        struct_size: usize,
        first: u64,
    }

    impl Options for Grown {
        const V1_SIZE: usize = size_of::<GrownV1>();
        const INIT: &'static str = "grown_init";
        fn defaults() -> Self {
            Grown {
                struct_size: size_of::<Grown>(),
                first: 1,
                added: 7,
            }
        }
    }

    #[test]
    fn fields_a_caller_built_against_an_older_header_does_not_know_keep_their_defaults() {
        let old = GrownV1 {
            struct_size: size_of::<GrownV1>(),
            first: 3,
        };
        // SAFETY: `struct_size` bytes are readable at `old`; `sized` reads no further (a
        // `GrownV1` is smaller than a `Grown`).
        let read = unsafe { sized(std::ptr::addr_of!(old).cast::<Grown>()) }
            .expect("the first layout's size is accepted");
        assert_eq!(read.struct_size, size_of::<GrownV1>());
        assert_eq!(read.first, 3);
        assert_eq!(read.added, 7);
    }
}
