/*
 * kmscks.hpp: a small header-only C++17 wrapper over the C API of libkmscks (kmscks.h).
 *
 * Why it exists: the C API is explicit about ownership (every char * and kmscks_buffer must be
 * freed, every call's result checked); in C++ that is what RAII and exceptions are for. This
 * header adds nothing to the library: each method is one kmscks_* call, whose outputs are
 * copied into C++ values and given back to kmscks at once (kmscks_buffer_free zeroizes), even
 * when the copy throws.
 *
 *   kmscks::Client kms = kmscks::Client::open();          // in this process, nothing on disk
 *   std::string key = kms.create_key();
 *   kmscks::Bytes blob = kms.encrypt(key, "hello", {{"purpose", "demo"}});
 *   kmscks::SecretBytes pt = kms.decrypt(blob, {{"purpose", "demo"}});
 *
 * - Failures throw kmscks::Error (a std::runtime_error) carrying the kmscks_result code, the
 *   AWS exception name (aws_name(): "NotFoundException") and kmscks's message (what()).
 * - Plaintexts, data keys, private keys, shared secrets and random bytes come back as
 *   kmscks::SecretBytes, a std::vector whose allocator wipes every allocation it gives back;
 *   ciphertexts, signatures, MACs, public keys and import tokens are kmscks::Bytes.
 * - A Client owns one kmscks_client handle: move-only, closed by its destructor. Its methods
 *   are const and may be called from many threads at once, as the C handle allows; moving or
 *   destroying it must not race with calls on it.
 * - String arguments are const char * or std::string; one that holds a NUL byte (which C
 *   would silently cut) throws Error(KMSCKS_INVALID_ARGUMENT). Optional ones (named *_or_null
 *   in kmscks.h) also take nullptr or std::nullopt.
 * - Byte arguments are kmscks::ByteView: containers and byte arrays are read whole, a string
 *   literal as its text (without its NUL); a char buffer must say its length, (buf, n): see
 *   ByteView for the rule and why.
 *
 * Build with -std=c++17 (or later) and link libkmscks as a C program does:
 *   c++ -std=c++17 app.cpp $(pkg-config --cflags --libs kmscks)
 */

#ifndef KMSCKS_HPP
#define KMSCKS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kmscks.h"

namespace kmscks {

// ---------------------------------------------------------------------------------------------
// Errors

/// A failed kmscks call: the kmscks_result code, its AWS exception name, and kmscks's message
/// for it (the calling thread's kmscks_last_error_message() at the time of the failure).
class Error : public std::runtime_error {
public:
    /// An error with `code` and the detail `detail` (may be empty).
    Error(kmscks_result code, std::string_view detail)
        : std::runtime_error(describe(code, detail)),
          code_(code),
          detail_at_(detail_offset(code, detail)) {}

    /// The error of the call that just failed with `code` on this thread: its detail is
    /// kmscks_last_error_message(), read now (before any other kmscks call).
    static Error last(kmscks_result code) { return Error(code, kmscks_last_error_message()); }

    /// The result code (never KMSCKS_OK).
    kmscks_result code() const noexcept { return code_; }

    /// The AWS exception name ("NotFoundException", "DisabledException", …), or kmscks's own
    /// ("InvalidArgument", "IO", "Internal"), as kmscks_result_name() gives it.
    std::string_view aws_name() const noexcept { return kmscks_result_name(code_); }

    /// kmscks's message (which key, which argument, AWS's wording), without the name.
    const char *detail() const noexcept { return what() + detail_at_; }

private:
    // what() is "<AwsName>: <detail>" (kmscks's messages never start with the name).
    static std::string describe(kmscks_result code, std::string_view detail) {
        std::string name = kmscks_result_name(code);
        if (detail.empty()) return name;
        return name + ": " + std::string(detail);
    }
    static std::size_t detail_offset(kmscks_result code, std::string_view detail) {
        std::string_view name = kmscks_result_name(code);
        if (detail.empty()) return name.size();
        return name.size() + 2;
    }

    kmscks_result code_;
    std::size_t detail_at_;
};

namespace detail {

/// Throws the calling thread's last error when `r` is not KMSCKS_OK.
inline void check(kmscks_result r) {
    if (r != KMSCKS_OK) throw Error::last(r);
}

/// Throws KMSCKS_INVALID_ARGUMENT naming `name`, as kmscks's own argument checks word it.
[[noreturn]] inline void invalid_argument(const char *name, const std::string &what) {
    throw Error(KMSCKS_INVALID_ARGUMENT, std::string("argument ") + name + ": " + what);
}

/// Overwrites `n` bytes at `p` with zeros in a way the compiler may not optimize away.
inline void secure_wipe(void *p, std::size_t n) noexcept {
    volatile unsigned char *v = static_cast<volatile unsigned char *>(p);
    while (n--) *v++ = 0;
#if defined(__GNUC__) || defined(__clang__)
    // The wiped memory is "used" here, so the stores above are not dead.
    __asm__ __volatile__("" : : "r"(p) : "memory");
#endif
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Bytes

/// An allocator that zeroizes every allocation before giving it back (when a vector grows,
/// shrinks to fit, or dies), so that secrets do not linger in freed memory.
template <class T>
struct ZeroizingAllocator {
    static_assert(std::is_trivially_destructible<T>::value, "for plain bytes");
    using value_type = T;

    ZeroizingAllocator() noexcept = default;
    template <class U>
    ZeroizingAllocator(const ZeroizingAllocator<U> &) noexcept {}

    T *allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
    void deallocate(T *p, std::size_t n) noexcept {
        detail::secure_wipe(p, n * sizeof(T));
        std::allocator<T>().deallocate(p, n);
    }

    template <class U>
    bool operator==(const ZeroizingAllocator<U> &) const noexcept { return true; }
    template <class U>
    bool operator!=(const ZeroizingAllocator<U> &) const noexcept { return false; }
};

/// Secret bytes (a plaintext, a data key, a private key, a shared secret, random bytes): wiped
/// when their storage is freed.
/// Avoid copying them; move them instead (every copy is wiped too, but is one more copy).
using SecretBytes = std::vector<std::uint8_t, ZeroizingAllocator<std::uint8_t>>;

/// Public bytes (a ciphertext blob, a signature, a MAC, a public key, an import token).
using Bytes = std::vector<std::uint8_t>;

namespace detail {

/// Whether arrays of V are text that C++ code writes as string literals (char, char8_t):
/// ByteView reads those arrays by its rule for text, not as plain bytes.
template <class V>
struct is_text_char : std::is_same<V, char> {};
#if defined(__cpp_char8_t)
template <>
struct is_text_char<char8_t> : std::true_type {};
#endif

/// False, but only once N is known: a static_assert on it fires only where it is instantiated.
template <std::size_t N>
struct dependent_false : std::false_type {};

/// How many bytes ByteView reads of the const char array `s` of `n` chars (see ByteView):
/// `n` when it holds no NUL; `n - 1` when its only NUL is its last char (a string literal's
/// terminator); a NUL before its last char throws Error(KMSCKS_INVALID_ARGUMENT), since the
/// array is then binary data or a literal with a NUL inside, which cannot be told apart.
inline std::size_t const_char_array_size(const char *s, std::size_t n) {
    const void *nul = std::memchr(s, '\0', n);
    if (nul == nullptr) return n;
    const std::size_t at = static_cast<std::size_t>(static_cast<const char *>(nul) - s);
    if (at == n - 1) return n - 1;
    throw Error(KMSCKS_INVALID_ARGUMENT,
                "kmscks::ByteView of a const char[" + std::to_string(n) +
                    "]: it holds a NUL byte at offset " + std::to_string(at) +
                    ", before its last char, so it is not a C string literal; pass (data, "
                    "size), or hold binary data in unsigned char, std::uint8_t or std::byte");
}

}  // namespace detail

/// Bytes a call reads (a plaintext, a ciphertext), without owning them. The bytes must stay
/// alive during the call. What it reads, by argument:
/// - a pointer and a length: exactly those bytes;
/// - a contiguous container of bytes or chars (Bytes, SecretBytes, std::string,
///   std::string_view, std::array, …) or a built-in array of unsigned char, signed char,
///   std::uint8_t or std::byte: all its elements (an array's NULs included: it is binary);
/// - a C string (const char * or char *): its bytes up to its first NUL (nullptr: none);
/// - a const char array, the type of a string literal: ByteView("hello") is the 5 bytes of
///   "hello", without the terminating NUL. A const char array cannot be told from a literal,
///   so it is read as one: without its last char when that is its only NUL, whole when it
///   holds no NUL. A NUL before its last char (binary data, or a literal like "a\0b")
///   throws Error(KMSCKS_INVALID_ARGUMENT) rather than guess (such an array's contents are
///   fixed when the program is built, so the first test that passes it shows it). The one
///   case read as text that binary data could be is a const char array whose only zero
///   byte is its last: keep binary data in unsigned char, std::uint8_t or std::byte arrays
///   (or pass (data, size)).
/// - a non-const char array (a char buffer filled at run time) does not compile: text up to
///   its NUL, or all its bytes? Its contents decide, and they change from run to run. Pass
///   (buf, std::strlen(buf)) or (buf, sizeof buf).
class ByteView {
public:
    ByteView() noexcept = default;
    ByteView(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    /// No bytes (as a NULL C string).
    ByteView(std::nullptr_t) noexcept {}
    /// A C string's bytes, without its terminating NUL (nullptr: no bytes). A template taking
    /// only pointers, so that an array goes to the array constructors below rather than decay
    /// to a pointer here (a non-template would win over them, and read it with strlen).
    template <class P, std::enable_if_t<std::is_same<P, const char *>::value ||
                                            std::is_same<P, char *>::value,
                                        int> = 0>
    ByteView(const P &text) noexcept
        : data_(reinterpret_cast<const std::uint8_t *>(text)),
          size_(text ? std::strlen(text) : 0) {}
    /// A string literal's text (or a const char array's): see the class comment.
    template <std::size_t N>
    ByteView(const char (&text)[N])
        : data_(reinterpret_cast<const std::uint8_t *>(text)),
          size_(detail::const_char_array_size(text, N)) {}
    /// A char buffer: refused at compile time (see the class comment).
    template <std::size_t N>
    ByteView(char (&)[N]) {
        static_assert(detail::dependent_false<N>::value,
                      "kmscks::ByteView of a char[N] buffer: text up to its NUL, or all N "
                      "bytes? Pass ByteView(buf, std::strlen(buf)) for text or "
                      "ByteView(buf, sizeof buf) for binary data, or hold binary data in "
                      "unsigned char, std::uint8_t or std::byte");
    }
    /// Every element of a contiguous container of 1-byte elements, or of an array of bytes.
    template <class C,
              class V = std::remove_cv_t<std::remove_pointer_t<decltype(std::data(
                  std::declval<const C &>()))>>,
              class = std::enable_if_t<!(std::is_array<C>::value &&
                                         detail::is_text_char<V>::value) &&
                                       sizeof(V) == 1 && std::is_trivially_copyable<V>::value>>
    ByteView(const C &bytes) noexcept
        : data_(reinterpret_cast<const std::uint8_t *>(std::data(bytes))),
          size_(std::size(bytes)) {}

    const std::uint8_t *data() const noexcept { return size_ ? data_ : nullptr; }
    std::size_t size() const noexcept { return size_; }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

/// An encryption context (or a set of tags): key → value, both UTF-8.
/// Pass `{}` for none, or an initializer list: `{{"purpose", "demo"}, {"user", "alice"}}`.
using EncryptionContext = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------------------------
// Arguments and outputs (internal)

namespace detail {

/// A required string argument: a C string (NULL is refused by kmscks) or a std::string
/// (refused here when it holds a NUL, which C would silently cut).
class Text {
public:
    Text(const char *s) noexcept : p_(s), n_(s ? std::strlen(s) : 0) {}
    Text(const std::string &s) noexcept : p_(s.c_str()), n_(s.size()) {}

    /// The C string, after checking it holds no NUL byte (`name` is the C argument's name).
    const char *c_str(const char *name) const {
        if (p_ && std::strlen(p_) != n_)
            invalid_argument(name, "holds a NUL byte at offset " +
                                       std::to_string(std::strlen(p_)));
        return p_;
    }

private:
    const char *p_;
    std::size_t n_;
};

/// An optional string argument: also nullptr or std::nullopt (for "none").
class OptionalText {
public:
    OptionalText() noexcept : t_(static_cast<const char *>(nullptr)) {}
    OptionalText(std::nullptr_t) noexcept : OptionalText() {}
    OptionalText(std::nullopt_t) noexcept : OptionalText() {}
    OptionalText(const char *s) noexcept : t_(s) {}
    OptionalText(const std::string &s) noexcept : t_(s) {}
    OptionalText(const std::optional<std::string> &s) noexcept
        : t_(s ? Text(*s) : Text(static_cast<const char *>(nullptr))) {}

    const char *c_str(const char *name) const { return t_.c_str(name); }

private:
    Text t_;
};

/// A string kmscks returned, freed with kmscks_string_free when this goes.
class OutString {
public:
    OutString() noexcept = default;
    OutString(const OutString &) = delete;
    OutString &operator=(const OutString &) = delete;
    ~OutString() { kmscks_string_free(p_); }

    char **out() noexcept { return &p_; }
    std::string str() const { return p_ ? std::string(p_) : std::string(); }

private:
    char *p_ = nullptr;
};

/// A buffer kmscks filled, zeroized and freed with kmscks_buffer_free when this goes.
class OutBuffer {
public:
    OutBuffer() noexcept = default;
    OutBuffer(const OutBuffer &) = delete;
    OutBuffer &operator=(const OutBuffer &) = delete;
    ~OutBuffer() { kmscks_buffer_free(&b_); }

    kmscks_buffer *out() noexcept { return &b_; }
    template <class V>
    V copy() const {
        return b_.data ? V(b_.data, b_.data + b_.len) : V();
    }

private:
    kmscks_buffer b_{nullptr, 0};
};

/// Copies a buffer into a V and frees it, even if the copy throws.
template <class V>
V take(kmscks_buffer &b) {
    struct Free {
        kmscks_buffer &b;
        ~Free() { kmscks_buffer_free(&b); }
    } free_it{b};
    return b.data ? V(b.data, b.data + b.len) : V();
}

/// An encryption context as C entries pointing into the map's strings (which must outlive
/// this).
class Context {
public:
    Context(const EncryptionContext &ctx, const char *name) {
        entries_.reserve(ctx.size());
        for (const auto &kv : ctx) {
            const char *k = Text(kv.first).c_str(name);
            const char *v = Text(kv.second).c_str(name);
            entries_.push_back(kmscks_context_entry{k, v});
        }
    }
    const kmscks_context_entry *data() const noexcept {
        return entries_.empty() ? nullptr : entries_.data();
    }
    std::size_t size() const noexcept { return entries_.size(); }

private:
    std::vector<kmscks_context_entry> entries_;
};

/// C batch results, every buffer freed when this goes (whether or not kmscks wrote them:
/// they start zeroed, and freeing a zeroed buffer does nothing).
template <class R>
class BatchResults {
public:
    explicit BatchResults(std::size_t n) : results_(n) {}
    BatchResults(const BatchResults &) = delete;
    BatchResults &operator=(const BatchResults &) = delete;
    ~BatchResults() {
        for (R &r : results_) free_buffers(r);
    }
    R *data() noexcept { return results_.empty() ? nullptr : results_.data(); }
    std::vector<R> &items() noexcept { return results_; }

private:
    static void free_buffers(kmscks_data_key_result &r) noexcept {
        kmscks_buffer_free(&r.plaintext);
        kmscks_buffer_free(&r.ciphertext);
    }
    static void free_buffers(kmscks_encrypt_result &r) noexcept {
        kmscks_buffer_free(&r.ciphertext);
    }
    std::vector<R> results_;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Values

/// Options of Client::open (kmscks_open_options).
struct OpenOptions {
    /// PBKDF2 iterations for the CloudHSM user password hashes; 0: the default (600,000).
    /// Lower only for tests and demos, never for data worth protecting.
    std::uint32_t hsm_password_iterations = 0;
    /// How long a store stays CONNECTING or DISCONNECTING; 0: the default (20 ms).
    std::chrono::milliseconds connect_delay{0};
};

/// Options of Client::connect (kmscks_connect_options).
struct ConnectOptions {
    /// How long a call checks for its answer before it sleeps (at most one second); unset:
    /// the library's default (kmscks_connect_options_init's, 20 µs). Zero sleeps at once: for
    /// many threads waiting on slow calls, at the price of a wake-up per answer.
    std::optional<std::chrono::microseconds> reply_spin;
    /// The longest any wait for the daemon may last (kmscks_connect_options' reply_timeout_ms);
    /// zero, the default: no limit. A wait that runs out throws the KMSCKS_IO error, the call's
    /// outcome unknown.
    std::chrono::milliseconds reply_timeout{0};
};

/// A custom key store's connection state and, when FAILED, why.
struct ConnectionStatus {
    kmscks_connection_state state;
    kmscks_connection_error_code error_code;
};

/// A data key: in the clear (use it, then let it go) and encrypted under the KMS key (keep it
/// next to the data).
struct DataKey {
    SecretBytes plaintext;
    Bytes ciphertext;
};

/// What Client::decrypt_with_key_id gives: the plaintext and the ARN of the key that made it.
struct Decrypted {
    SecretBytes plaintext;
    std::string key_arn;
};

/// What Client::create_grant gives: the grant's id (for revoke_grant) and a grant token.
struct Grant {
    std::string grant_id;
    std::string grant_token;
};

/// What Client::get_parameters_for_import gives: the wrapping public key (DER
/// SubjectPublicKeyInfo), the import token that goes with it, and when both stop being
/// accepted (seconds since the Unix epoch).
struct ImportParameters {
    Bytes public_key;
    Bytes import_token;
    std::int64_t valid_to = 0;
};

/// A data key pair: its private key (PKCS#8 DER) in the clear (use it, then let it go) and
/// encrypted under the KMS key, and its public key (DER SubjectPublicKeyInfo).
struct DataKeyPair {
    SecretBytes private_key_plaintext;
    Bytes private_key_ciphertext;
    Bytes public_key;
};

/// What Client::generate_data_key_pair_without_plaintext gives: a DataKeyPair without the
/// private key in the clear.
struct DataKeyPairWithoutPlaintext {
    Bytes private_key_ciphertext;
    Bytes public_key;
};

/// One item of Client::generate_data_key_batch.
struct DataKeyRequest {
    std::string key_id;
    std::size_t number_of_bytes = 32;
    EncryptionContext context;
};

/// One item of Client::encrypt_batch (the plaintext is not owned: keep it alive for the call).
struct EncryptRequest {
    std::string key_id;
    ByteView plaintext;
    EncryptionContext context;
};

/// One answer of a batch: its own result code and, when that is KMSCKS_OK, the value.
template <class T>
struct ItemResult {
    kmscks_result result = KMSCKS_OK;
    T value{};

    bool ok() const noexcept { return result == KMSCKS_OK; }
    std::string_view aws_name() const noexcept { return kmscks_result_name(result); }
    /// The value, or Error(result) when this item failed.
    T &get() & {
        if (!ok()) throw Error(result, "");
        return value;
    }
    const T &get() const & {
        if (!ok()) throw Error(result, "");
        return value;
    }
    /// Moves the value out (of a result that is going away).
    T get() && { return std::move(get()); }
};
using DataKeyResult = ItemResult<DataKey>;
using EncryptResult = ItemResult<Bytes>;

/// The library's version ("0.1.0"); compare with KMSCKS_VERSION_STRING, the header's.
inline std::string_view version() noexcept { return kmscks_version(); }

// ---------------------------------------------------------------------------------------------
// The client

/// An owning handle to kmscks (kmscks_client): in this process (open) or through the daemon
/// (connect). Move-only; the destructor closes it. Every method is one kmscks_* call and throws
/// Error when it fails. Methods are const: one Client may serve many threads at once.
class Client {
public:
    /// Runs kmscks in this process with nothing on disk (kmscks_open(NULL)).
    static Client open() { return open(static_cast<const char *>(nullptr)); }
    /// Runs kmscks in this process on the data directory `data_dir` (nullptr: nothing on disk).
    static Client open(detail::OptionalText data_dir) {
        kmscks_client *c = nullptr;
        detail::check(kmscks_open(data_dir.c_str("data_dir"), &c));
        return Client(c);
    }
    /// As open(data_dir), with options.
    static Client open(detail::OptionalText data_dir, const OpenOptions &options) {
        kmscks_open_options o;
        kmscks_open_options_init(&o);
        o.hsm_password_iterations = options.hsm_password_iterations;
        o.connect_delay_ms = milliseconds(options.connect_delay, "options.connect_delay");
        kmscks_client *c = nullptr;
        detail::check(kmscks_open_with(data_dir.c_str("data_dir"), &o, &c));
        return Client(c);
    }
    /// Connects to kmscksd on `socket_path` (nullptr or none: the default socket, as the CLI).
    static Client connect(detail::OptionalText socket_path = nullptr) {
        kmscks_client *c = nullptr;
        detail::check(kmscks_connect(socket_path.c_str("socket_path"), &c));
        return Client(c);
    }
    /// As connect(socket_path), with options.
    static Client connect(detail::OptionalText socket_path, const ConnectOptions &options) {
        kmscks_connect_options o;
        kmscks_connect_options_init_sized(&o, sizeof o);
        if (options.reply_spin)
            o.reply_spin_us = count_u32(*options.reply_spin, "options.reply_spin", "us");
        if (options.reply_timeout.count() < 0)
            detail::invalid_argument("options.reply_timeout",
                                     std::to_string(options.reply_timeout.count()) +
                                         " ms is negative");
        o.reply_timeout_ms = static_cast<std::uint64_t>(options.reply_timeout.count());
        kmscks_client *c = nullptr;
        detail::check(kmscks_connect_with(socket_path.c_str("socket_path"), &o, &c));
        return Client(c);
    }

    /// Takes ownership of a handle from kmscks_open/kmscks_connect (nullptr: an empty Client).
    explicit Client(kmscks_client *handle) noexcept : c_(handle) {}
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    Client(Client &&other) noexcept : c_(other.release()) {}
    Client &operator=(Client &&other) noexcept {
        if (this != &other) {
            close();
            c_ = other.release();
        }
        return *this;
    }
    ~Client() { close(); }

    /// Closes the handle now (the destructor does it otherwise); the Client is then empty.
    void close() noexcept {
        kmscks_close(c_);
        c_ = nullptr;
    }
    /// The C handle, still owned by this Client (for calling kmscks.h directly).
    kmscks_client *get() const noexcept { return c_; }
    /// Gives up ownership: the caller must kmscks_close the handle.
    kmscks_client *release() noexcept { return std::exchange(c_, nullptr); }
    /// False once moved from, closed or released (calls then throw KMSCKS_INVALID_ARGUMENT).
    explicit operator bool() const noexcept { return c_ != nullptr; }

    // -- Cluster side (CloudHSM) ----------------------------------------------------------

    /// Creates a cluster with subnets in the Region's zones a and b; returns its id.
    std::string create_cluster() const {
        detail::OutString id;
        detail::check(kmscks_create_cluster(c_, id.out()));
        return id.str();
    }
    /// Adds an HSM in `availability_zone`; returns its id.
    std::string create_hsm(detail::Text cluster_id, detail::Text availability_zone) const {
        detail::OutString id;
        detail::check(kmscks_create_hsm(c_, cluster_id.c_str("cluster_id"),
                                        availability_zone.c_str("availability_zone"), id.out()));
        return id.str();
    }
    void delete_hsm(detail::Text cluster_id, detail::Text hsm_id) const {
        detail::check(
            kmscks_delete_hsm(c_, cluster_id.c_str("cluster_id"), hsm_id.c_str("hsm_id")));
    }
    /// The cluster's certificate signing request (PEM), for initializing with your own CA.
    std::string get_cluster_csr(detail::Text cluster_id) const {
        detail::OutString pem;
        detail::check(kmscks_get_cluster_csr(c_, cluster_id.c_str("cluster_id"), pem.out()));
        return pem.str();
    }
    /// Initializes the cluster; returns the trust anchor (PEM). No bundle: kmscks makes the
    /// CA; otherwise the signed cluster certificate then your CA certificate (then
    /// activate_cluster).
    std::string initialize_cluster(detail::Text cluster_id,
                                   detail::OptionalText trust_anchor_bundle = nullptr) const {
        detail::OutString pem;
        detail::check(kmscks_initialize_cluster(
            c_, cluster_id.c_str("cluster_id"),
            trust_anchor_bundle.c_str("trust_anchor_pem_or_null"), pem.out()));
        return pem.str();
    }
    void create_crypto_user(detail::Text cluster_id, detail::Text username,
                            detail::Text password) const {
        detail::check(kmscks_create_crypto_user(c_, cluster_id.c_str("cluster_id"),
                                                username.c_str("username"),
                                                password.c_str("password")));
    }
    /// Activates a cluster initialized with your own bundle (INITIALIZED → ACTIVE) by setting
    /// its admin password.
    void activate_cluster(detail::Text cluster_id, detail::Text admin_password) const {
        detail::check(kmscks_activate_cluster(c_, cluster_id.c_str("cluster_id"),
                                              admin_password.c_str("admin_password")));
    }
    void change_crypto_user_password(detail::Text cluster_id, detail::Text username,
                                     detail::Text new_password) const {
        detail::check(kmscks_change_crypto_user_password(c_, cluster_id.c_str("cluster_id"),
                                                         username.c_str("username"),
                                                         new_password.c_str("new_password")));
    }

    // -- Custom key stores ----------------------------------------------------------------

    /// Creates a custom key store (DISCONNECTED); returns its id.
    std::string create_custom_key_store(detail::Text name, detail::Text cluster_id,
                                        detail::Text trust_anchor_pem,
                                        detail::Text key_store_password) const {
        detail::OutString id;
        detail::check(kmscks_create_custom_key_store(
            c_, name.c_str("name"), cluster_id.c_str("cluster_id"),
            trust_anchor_pem.c_str("trust_anchor_pem"),
            key_store_password.c_str("key_store_password"), id.out()));
        return id.str();
    }
    void connect_custom_key_store(detail::Text store_id) const {
        detail::check(kmscks_connect_custom_key_store(c_, store_id.c_str("store_id")));
    }
    void disconnect_custom_key_store(detail::Text store_id) const {
        detail::check(kmscks_disconnect_custom_key_store(c_, store_id.c_str("store_id")));
    }
    /// Changes what is given (nullptr leaves a setting as it is).
    void update_custom_key_store(detail::Text store_id, detail::OptionalText new_name,
                                 detail::OptionalText new_password = nullptr,
                                 detail::OptionalText new_cluster_id = nullptr) const {
        detail::check(kmscks_update_custom_key_store(
            c_, store_id.c_str("store_id"), new_name.c_str("new_name_or_null"),
            new_password.c_str("new_password_or_null"),
            new_cluster_id.c_str("new_cluster_id_or_null")));
    }
    void delete_custom_key_store(detail::Text store_id) const {
        detail::check(kmscks_delete_custom_key_store(c_, store_id.c_str("store_id")));
    }
    ConnectionStatus connection_state(detail::Text store_id) const {
        ConnectionStatus s{KMSCKS_CONNECTION_STATE_DISCONNECTED,
                           KMSCKS_CONNECTION_ERROR_CODE_NONE};
        detail::check(kmscks_get_connection_state(c_, store_id.c_str("store_id"), &s.state,
                                                  &s.error_code));
        return s;
    }
    /// Waits for a connecting store: returns when CONNECTED, throws when it ends FAILED
    /// (KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE) or is still connecting at the deadline
    /// (KMSCKS_DEPENDENCY_TIMEOUT).
    void wait_connected(detail::Text store_id,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        detail::check(kmscks_wait_connected(c_, store_id.c_str("store_id"),
                                            milliseconds(timeout, "timeout_ms")));
    }
    /// Waits until the store is neither CONNECTING nor DISCONNECTING; returns where it settled
    /// (throws KMSCKS_DEPENDENCY_TIMEOUT when it has not by then).
    kmscks_connection_state wait_settled(
        detail::Text store_id,
        std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        kmscks_connection_state state = KMSCKS_CONNECTION_STATE_CONNECTED;
        detail::check(kmscks_wait_settled(c_, store_id.c_str("store_id"),
                                          milliseconds(timeout, "timeout_ms"), &state));
        return state;
    }
    /// DescribeCustomKeyStores as JSON: one store, or all (nullptr).
    std::string describe_custom_key_stores_json(detail::OptionalText store_id = nullptr) const {
        detail::OutString json;
        detail::check(kmscks_describe_custom_key_stores_json(
            c_, store_id.c_str("store_id_or_null"), json.out()));
        return json.str();
    }

    // -- Keys -----------------------------------------------------------------------------

    /// Creates a symmetric key in a custom key store (or, nullptr, the default key store);
    /// returns its id.
    std::string create_key(detail::OptionalText custom_key_store_id = nullptr,
                           detail::OptionalText description = nullptr) const {
        detail::OutString id;
        detail::check(kmscks_create_key(c_,
                                        custom_key_store_id.c_str("custom_key_store_id_or_null"),
                                        description.c_str("description_or_null"), id.out()));
        return id.str();
    }
    /// Creates a key of `key_spec` for `key_usage` in the default key store (AWS's spellings:
    /// "HMAC_256" with "GENERATE_VERIFY_MAC", "ECC_NIST_P256" with "SIGN_VERIFY" or
    /// "KEY_AGREEMENT", "RSA_2048" with "ENCRYPT_DECRYPT"…); returns its id.
    std::string create_key_of_spec(detail::Text key_spec, detail::Text key_usage) const {
        detail::OutString id;
        detail::check(kmscks_create_key_of_spec(c_, key_spec.c_str("key_spec"),
                                                key_usage.c_str("key_usage"), id.out()));
        return id.str();
    }
    /// DescribeKey's KeyMetadata as JSON.
    std::string describe_key_json(detail::Text key_id) const {
        detail::OutString json;
        detail::check(kmscks_describe_key_json(c_, key_id.c_str("key_id"), json.out()));
        return json.str();
    }
    kmscks_key_state key_state(detail::Text key_id) const {
        kmscks_key_state s = KMSCKS_KEY_STATE_UNAVAILABLE;
        detail::check(kmscks_get_key_state(c_, key_id.c_str("key_id"), &s));
        return s;
    }
    void enable_key(detail::Text key_id) const {
        detail::check(kmscks_enable_key(c_, key_id.c_str("key_id")));
    }
    void disable_key(detail::Text key_id) const {
        detail::check(kmscks_disable_key(c_, key_id.c_str("key_id")));
    }
    /// Schedules deletion after `pending_window_days` (7 to 30; 0: 30); returns the deletion
    /// date in seconds since the Unix epoch.
    std::int64_t schedule_key_deletion(detail::Text key_id,
                                       std::uint32_t pending_window_days = 0) const {
        std::int64_t date = 0;
        detail::check(
            kmscks_schedule_key_deletion(c_, key_id.c_str("key_id"), pending_window_days, &date));
        return date;
    }
    void cancel_key_deletion(detail::Text key_id) const {
        detail::check(kmscks_cancel_key_deletion(c_, key_id.c_str("key_id")));
    }
    void create_alias(detail::Text alias_name, detail::Text key_id) const {
        detail::check(
            kmscks_create_alias(c_, alias_name.c_str("alias_name"), key_id.c_str("key_id")));
    }
    void delete_alias(detail::Text alias_name) const {
        detail::check(kmscks_delete_alias(c_, alias_name.c_str("alias_name")));
    }
    void tag_resource(detail::Text key_id, const EncryptionContext &tags) const {
        detail::Context t(tags, "tags");
        detail::check(kmscks_tag_resource(c_, key_id.c_str("key_id"), t.data(), t.size()));
    }
    void untag_resource(detail::Text key_id, const std::vector<std::string> &tag_keys) const {
        std::vector<const char *> keys;
        keys.reserve(tag_keys.size());
        for (const std::string &k : tag_keys) keys.push_back(detail::Text(k).c_str("tag_keys"));
        detail::check(kmscks_untag_resource(c_, key_id.c_str("key_id"),
                                            keys.empty() ? nullptr : keys.data(), keys.size()));
    }
    /// One page of ListKeys as JSON (limit 0: 100; marker: the previous page's NextMarker).
    std::string list_keys_json(std::uint32_t limit = 0,
                               detail::OptionalText marker = nullptr) const {
        detail::OutString json;
        detail::check(
            kmscks_list_keys_json(c_, limit, marker.c_str("marker_or_null"), json.out()));
        return json.str();
    }
    /// One page of ListAliases as JSON: a key's aliases, or all (nullptr).
    std::string list_aliases_json(detail::OptionalText key_id = nullptr, std::uint32_t limit = 0,
                                  detail::OptionalText marker = nullptr) const {
        detail::OutString json;
        detail::check(kmscks_list_aliases_json(c_, key_id.c_str("key_id_or_null"), limit,
                                               marker.c_str("marker_or_null"), json.out()));
        return json.str();
    }

    // -- Grants ---------------------------------------------------------------------------

    /// Lets `grantee_principal` (an IAM ARN) perform `operations` (AWS's names: "Encrypt",
    /// "Decrypt", "DescribeKey"…) with the key, under an encryption context subset (`{}`: none).
    Grant create_grant(detail::Text key_id, detail::Text grantee_principal,
                       const std::vector<std::string> &operations,
                       const EncryptionContext &subset = {}) const {
        std::vector<const char *> ops;
        ops.reserve(operations.size());
        for (const std::string &op : operations)
            ops.push_back(detail::Text(op).c_str("operations"));
        detail::Context sub(subset, "subset");
        detail::OutString id, token;
        detail::check(kmscks_create_grant(c_, key_id.c_str("key_id"),
                                          grantee_principal.c_str("grantee_principal"),
                                          ops.empty() ? nullptr : ops.data(), ops.size(),
                                          sub.data(), sub.size(), id.out(), token.out()));
        return Grant{id.str(), token.str()};
    }
    /// Revokes a grant of the key: from the next request on, it allows nothing.
    void revoke_grant(detail::Text key_id, detail::Text grant_id) const {
        detail::check(
            kmscks_revoke_grant(c_, key_id.c_str("key_id"), grant_id.c_str("grant_id")));
    }

    // -- Imported key material ------------------------------------------------------------

    /// Creates a symmetric key with Origin EXTERNAL, PendingImport until import_key_material;
    /// returns its id.
    std::string create_external_key(detail::OptionalText description = nullptr) const {
        detail::OutString id;
        detail::check(kmscks_create_external_key(c_, description.c_str("description_or_null"),
                                                 id.out()));
        return id.str();
    }
    /// The wrapping public key and import token for `wrapping_algorithm`
    /// ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"…) and `wrapping_key_spec`
    /// ("RSA_2048"…).
    ImportParameters get_parameters_for_import(detail::Text key_id,
                                               detail::Text wrapping_algorithm,
                                               detail::Text wrapping_key_spec) const {
        detail::OutBuffer public_key, import_token;
        std::int64_t valid_to = 0;
        detail::check(kmscks_get_parameters_for_import(
            c_, key_id.c_str("key_id"), wrapping_algorithm.c_str("wrapping_algorithm"),
            wrapping_key_spec.c_str("wrapping_key_spec"), public_key.out(), import_token.out(),
            &valid_to));
        return ImportParameters{public_key.copy<Bytes>(), import_token.copy<Bytes>(), valid_to};
    }
    /// Imports key material wrapped under the import token's public key; it expires at
    /// `valid_to` (seconds since the Unix epoch), or never (0). Returns the material's id.
    std::string import_key_material(detail::Text key_id, ByteView import_token,
                                    ByteView encrypted_key_material,
                                    std::int64_t valid_to = 0) const {
        detail::OutString id;
        detail::check(kmscks_import_key_material(
            c_, key_id.c_str("key_id"), import_token.data(), import_token.size(),
            encrypted_key_material.data(), encrypted_key_material.size(), valid_to, id.out()));
        return id.str();
    }
    /// Deletes the imported material: the key is PendingImport until it is imported again.
    void delete_imported_key_material(detail::Text key_id) const {
        detail::check(kmscks_delete_imported_key_material(c_, key_id.c_str("key_id")));
    }

    // -- Cryptographic operations ---------------------------------------------------------

    /// Encrypts `plaintext` under `key_id` (id, ARN, alias name or alias ARN).
    Bytes encrypt(detail::Text key_id, ByteView plaintext,
                  const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer ct;
        detail::check(kmscks_encrypt(c_, key_id.c_str("key_id"), plaintext.data(),
                                     plaintext.size(), ctx.data(), ctx.size(), ct.out()));
        return ct.copy<Bytes>();
    }
    /// Decrypts a ciphertext blob made with `context`.
    SecretBytes decrypt(ByteView ciphertext, const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer pt;
        detail::check(kmscks_decrypt(c_, ciphertext.data(), ciphertext.size(), ctx.data(),
                                     ctx.size(), pt.out(), nullptr));
        return pt.copy<SecretBytes>();
    }
    /// As decrypt, also naming the key that made the blob (its ARN).
    Decrypted decrypt_with_key_id(ByteView ciphertext,
                                  const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer pt;
        detail::OutString arn;
        detail::check(kmscks_decrypt(c_, ciphertext.data(), ciphertext.size(), ctx.data(),
                                     ctx.size(), pt.out(), arn.out()));
        return Decrypted{pt.copy<SecretBytes>(), arn.str()};
    }
    /// Decrypts and encrypts again under `dest_key_id`, inside kmscks.
    Bytes re_encrypt(ByteView ciphertext, const EncryptionContext &source_context,
                     detail::Text dest_key_id,
                     const EncryptionContext &dest_context = {}) const {
        detail::Context src(source_context, "src_ctx");
        detail::Context dest(dest_context, "dest_ctx");
        detail::OutBuffer ct;
        detail::check(kmscks_re_encrypt(c_, ciphertext.data(), ciphertext.size(), src.data(),
                                        src.size(), dest_key_id.c_str("dest_key_id"),
                                        dest.data(), dest.size(), ct.out()));
        return ct.copy<Bytes>();
    }
    /// A data key of `number_of_bytes` bytes (32: AES-256), in the clear and encrypted.
    DataKey generate_data_key(detail::Text key_id, std::size_t number_of_bytes = 32,
                              const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer pt, ct;
        detail::check(kmscks_generate_data_key(c_, key_id.c_str("key_id"), number_of_bytes,
                                               ctx.data(), ctx.size(), pt.out(), ct.out()));
        return DataKey{pt.copy<SecretBytes>(), ct.copy<Bytes>()};
    }
    /// Only the encrypted data key.
    Bytes generate_data_key_without_plaintext(detail::Text key_id,
                                              std::size_t number_of_bytes = 32,
                                              const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer ct;
        detail::check(kmscks_generate_data_key_without_plaintext(
            c_, key_id.c_str("key_id"), number_of_bytes, ctx.data(), ctx.size(), ct.out()));
        return ct.copy<Bytes>();
    }
    /// `n` random bytes (1 to 1024), from a custom key store's cluster when one is named.
    SecretBytes generate_random(std::size_t n,
                                detail::OptionalText custom_key_store_id = nullptr) const {
        detail::OutBuffer out;
        detail::check(kmscks_generate_random(
            c_, custom_key_store_id.c_str("custom_key_store_id_or_null"), n, out.out()));
        return out.copy<SecretBytes>();
    }

    /// GenerateDataKey for many items in one call (the engine's batched path). Throws when the
    /// batch could not run; otherwise each item carries its own result code.
    std::vector<DataKeyResult> generate_data_key_batch(
        const std::vector<DataKeyRequest> &items) const {
        std::vector<detail::Context> contexts;
        std::vector<kmscks_data_key_request> requests;
        contexts.reserve(items.size());
        requests.reserve(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            const DataKeyRequest &item = items[i];
            std::string at = "items[" + std::to_string(i) + "]";
            contexts.emplace_back(item.context, (at + ".ctx").c_str());
            requests.push_back(kmscks_data_key_request{
                detail::Text(item.key_id).c_str((at + ".key_id").c_str()), item.number_of_bytes,
                contexts.back().data(), contexts.back().size()});
        }
        detail::BatchResults<kmscks_data_key_result> raw(items.size());
        detail::check(kmscks_generate_data_key_batch(
            c_, requests.empty() ? nullptr : requests.data(), requests.size(), raw.data()));
        std::vector<DataKeyResult> results;
        results.reserve(items.size());
        for (kmscks_data_key_result &r : raw.items()) {
            DataKeyResult item;
            item.result = r.result;
            item.value.plaintext = detail::take<SecretBytes>(r.plaintext);
            item.value.ciphertext = detail::take<Bytes>(r.ciphertext);
            results.push_back(std::move(item));
        }
        return results;
    }

    /// Encrypt for many items in one call; results as generate_data_key_batch.
    std::vector<EncryptResult> encrypt_batch(const std::vector<EncryptRequest> &items) const {
        std::vector<detail::Context> contexts;
        std::vector<kmscks_encrypt_request> requests;
        contexts.reserve(items.size());
        requests.reserve(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            const EncryptRequest &item = items[i];
            std::string at = "items[" + std::to_string(i) + "]";
            contexts.emplace_back(item.context, (at + ".ctx").c_str());
            requests.push_back(kmscks_encrypt_request{
                detail::Text(item.key_id).c_str((at + ".key_id").c_str()),
                item.plaintext.data(), item.plaintext.size(), contexts.back().data(),
                contexts.back().size()});
        }
        detail::BatchResults<kmscks_encrypt_result> raw(items.size());
        detail::check(kmscks_encrypt_batch(c_, requests.empty() ? nullptr : requests.data(),
                                           requests.size(), raw.data()));
        std::vector<EncryptResult> results;
        results.reserve(items.size());
        for (kmscks_encrypt_result &r : raw.items()) {
            EncryptResult item;
            item.result = r.result;
            item.value = detail::take<Bytes>(r.ciphertext);
            results.push_back(std::move(item));
        }
        return results;
    }

    // -- HMAC, signing, RSA encryption and key agreement ----------------------------------

    /// The HMAC of `msg` under an HMAC key with `mac_algorithm` ("HMAC_SHA_256"…).
    Bytes generate_mac(detail::Text key_id, detail::Text mac_algorithm, ByteView msg) const {
        detail::OutBuffer mac;
        detail::check(kmscks_generate_mac(c_, key_id.c_str("key_id"),
                                          mac_algorithm.c_str("mac_algorithm"), msg.data(),
                                          msg.size(), mac.out()));
        return mac.copy<Bytes>();
    }
    /// Returns when `mac` is the HMAC of `msg`; throws KMSCKS_KMS_INVALID_MAC when it is not.
    void verify_mac(detail::Text key_id, detail::Text mac_algorithm, ByteView msg,
                    ByteView mac) const {
        detail::check(kmscks_verify_mac(c_, key_id.c_str("key_id"),
                                        mac_algorithm.c_str("mac_algorithm"), msg.data(),
                                        msg.size(), mac.data(), mac.size()));
    }
    /// Signs `msg` with `signing_algorithm` ("ECDSA_SHA_256"…): the message itself (nullptr
    /// or "RAW"), or its digest ("DIGEST").
    Bytes sign(detail::Text key_id, detail::Text signing_algorithm, ByteView msg,
               detail::OptionalText message_type = nullptr) const {
        detail::OutBuffer signature;
        detail::check(kmscks_sign(c_, key_id.c_str("key_id"),
                                  signing_algorithm.c_str("signing_algorithm"), msg.data(),
                                  msg.size(), message_type.c_str("message_type_or_null"),
                                  signature.out()));
        return signature.copy<Bytes>();
    }
    /// Returns when `signature` is one of `msg` (as sign reads it); throws
    /// KMSCKS_KMS_INVALID_SIGNATURE when it is not.
    void verify(detail::Text key_id, detail::Text signing_algorithm, ByteView msg,
                detail::OptionalText message_type, ByteView signature) const {
        detail::check(kmscks_verify(c_, key_id.c_str("key_id"),
                                    signing_algorithm.c_str("signing_algorithm"), msg.data(),
                                    msg.size(), message_type.c_str("message_type_or_null"),
                                    signature.data(), signature.size()));
    }
    /// The public key of an asymmetric key (DER SubjectPublicKeyInfo).
    Bytes get_public_key(detail::Text key_id) const {
        detail::OutBuffer public_key;
        detail::check(kmscks_get_public_key(c_, key_id.c_str("key_id"), public_key.out()));
        return public_key.copy<Bytes>();
    }
    /// A fresh key pair of `key_pair_spec` ("ECC_NIST_P256", "RSA_2048"…), its private key
    /// encrypted under the symmetric key `key_id`.
    DataKeyPair generate_data_key_pair(detail::Text key_id, detail::Text key_pair_spec,
                                       const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer pt, ct, pub;
        detail::check(kmscks_generate_data_key_pair(
            c_, key_id.c_str("key_id"), key_pair_spec.c_str("key_pair_spec"), ctx.data(),
            ctx.size(), pt.out(), ct.out(), pub.out()));
        return DataKeyPair{pt.copy<SecretBytes>(), ct.copy<Bytes>(), pub.copy<Bytes>()};
    }
    /// Only the encrypted private key and the public key.
    DataKeyPairWithoutPlaintext generate_data_key_pair_without_plaintext(
        detail::Text key_id, detail::Text key_pair_spec,
        const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer ct, pub;
        detail::check(kmscks_generate_data_key_pair_without_plaintext(
            c_, key_id.c_str("key_id"), key_pair_spec.c_str("key_pair_spec"), ctx.data(),
            ctx.size(), ct.out(), pub.out()));
        return DataKeyPairWithoutPlaintext{ct.copy<Bytes>(), pub.copy<Bytes>()};
    }
    /// Encrypts with `encryption_algorithm`: "SYMMETRIC_DEFAULT" as encrypt, or with an RSA
    /// key "RSAES_OAEP_SHA_256" or "RSAES_OAEP_SHA_1" (no context).
    Bytes encrypt_with_algorithm(detail::Text key_id, detail::Text encryption_algorithm,
                                 ByteView plaintext,
                                 const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer ct;
        detail::check(kmscks_encrypt_with_algorithm(
            c_, key_id.c_str("key_id"), encryption_algorithm.c_str("encryption_algorithm"),
            plaintext.data(), plaintext.size(), ctx.data(), ctx.size(), ct.out()));
        return ct.copy<Bytes>();
    }
    /// Decrypts with `encryption_algorithm` under `key_id` (an RSA ciphertext names no key).
    SecretBytes decrypt_with_algorithm(detail::Text key_id, detail::Text encryption_algorithm,
                                       ByteView ciphertext,
                                       const EncryptionContext &context = {}) const {
        detail::Context ctx(context, "ctx");
        detail::OutBuffer pt;
        detail::check(kmscks_decrypt_with_algorithm(
            c_, key_id.c_str("key_id"), encryption_algorithm.c_str("encryption_algorithm"),
            ciphertext.data(), ciphertext.size(), ctx.data(), ctx.size(), pt.out()));
        return pt.copy<SecretBytes>();
    }
    /// The shared secret of a KEY_AGREEMENT key and a peer's `public_key` (DER
    /// SubjectPublicKeyInfo of the key's curve), with `key_agreement_algorithm` ("ECDH").
    SecretBytes derive_shared_secret(detail::Text key_id, detail::Text key_agreement_algorithm,
                                     ByteView public_key) const {
        detail::OutBuffer secret;
        detail::check(kmscks_derive_shared_secret(
            c_, key_id.c_str("key_id"), key_agreement_algorithm.c_str("key_agreement_algorithm"),
            public_key.data(), public_key.size(), secret.out()));
        return secret.copy<SecretBytes>();
    }

private:
    /// A duration's count in `unit` as the C API's 32-bit field.
    template <class Duration>
    static std::uint32_t count_u32(Duration d, const char *name, const char *unit) {
        if (d.count() < 0 || static_cast<unsigned long long>(d.count()) >
                                 std::numeric_limits<std::uint32_t>::max())
            detail::invalid_argument(name, std::to_string(d.count()) + " " + unit +
                                               " does not fit 0 to 4294967295 " + unit);
        return static_cast<std::uint32_t>(d.count());
    }
    /// A duration as the C API's 32-bit milliseconds.
    static std::uint32_t milliseconds(std::chrono::milliseconds d, const char *name) {
        return count_u32(d, name, "ms");
    }

    kmscks_client *c_ = nullptr;
};

}  // namespace kmscks

#endif  // KMSCKS_HPP
