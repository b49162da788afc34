// wrapper.cpp: tests of the C++ wrapper include/kmscks.hpp, in embedded mode: errors carry the
// right code, AWS name and message; Client is an owning, move-only handle; secrets come back
// whole in zeroizing storage; batches answer per item; one Client serves many threads.
//
// Built by tests/capi_cpp.rs with `c++ -std=c++17 -Wall -Wextra -Werror -pedantic` against the
// installed library; run as `wrapper SCRATCH_DIR` (a directory it may create data dirs in).
// Prints one line per test and exits non-zero when any fails.

#include <kmscks.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// -- A minimal harness ----------------------------------------------------------------------

struct Failure {
    std::string what;
};

#define EXPECT(cond)                                                                     \
    do {                                                                                 \
        if (!(cond)) throw Failure{std::string(__FILE__ ":") + std::to_string(__LINE__) + \
                                   ": expected " #cond};                                 \
    } while (0)

// Runs `body`, which must throw kmscks::Error with `code`; returns the error.
template <class F>
kmscks::Error expect_error(kmscks_result code, F body, int line) {
    try {
        body();
    } catch (const kmscks::Error &e) {
        if (e.code() != code) {
            throw Failure{"line " + std::to_string(line) + ": expected " +
                          kmscks_result_name(code) + ", got " + e.what()};
        }
        return e;
    }
    throw Failure{"line " + std::to_string(line) + ": expected " + kmscks_result_name(code) +
                  ", nothing was thrown"};
}
#define EXPECT_ERROR(code, ...) expect_error((code), [&] { __VA_ARGS__; }, __LINE__)

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string text(const kmscks::SecretBytes &bytes) { return std::string(bytes.begin(), bytes.end()); }

// Fewer PBKDF2 iterations for the HSM user's password: these tests make and log in users
// often, and protect nothing (never lower this for real data).
kmscks::Client open_fast(const char *data_dir = nullptr) {
    kmscks::OpenOptions options;
    options.hsm_password_iterations = 1000;
    return kmscks::Client::open(data_dir, options);
}

struct Store {
    std::string cluster;
    std::string store;
};

// Steps 1 to 3 of the flow: a connected custom key store.
Store connected_store(const kmscks::Client &kms, const std::string &name) {
    Store s;
    s.cluster = kms.create_cluster();
    kms.create_hsm(s.cluster, "us-east-1a");
    kms.create_hsm(s.cluster, "us-east-1b");
    const std::string anchor = kms.initialize_cluster(s.cluster);
    kms.create_crypto_user(s.cluster, "kmsuser", "kmsuserPassw0rd");
    s.store = kms.create_custom_key_store(name, s.cluster, anchor, "kmsuserPassw0rd");
    kms.connect_custom_key_store(s.store);
    kms.wait_connected(s.store);
    return s;
}

std::string scratch_dir;  // argv[1]

// -- Tests ----------------------------------------------------------------------------------

void an_aws_error_carries_its_code_its_exception_name_and_kmscks_message() {
    const kmscks::Client kms = kmscks::Client::open();
    kmscks::Error e = EXPECT_ERROR(KMSCKS_NOT_FOUND,
                                   kms.describe_key_json("11111111-2222-3333-4444-555555555555"));
    EXPECT(e.aws_name() == "NotFoundException");
    EXPECT(contains(e.what(), "NotFoundException: "));
    EXPECT(contains(e.what(), "11111111-2222-3333-4444-555555555555"));
    // what() names the exception once; detail() is the message after the name.
    EXPECT(std::string(e.what()).rfind("NotFoundException") == 0);
    EXPECT(!contains(e.detail(), "NotFoundException"));
    EXPECT(contains(e.detail(), "11111111-2222-3333-4444-555555555555"));
    // It is a std::runtime_error like any other.
    const std::runtime_error &base = e;
    EXPECT(std::string(base.what()) == e.what());
}

void damaged_ciphertext_and_a_wrong_context_are_invalid_ciphertext() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    kmscks::Bytes blob = kms.encrypt(key, "secret", {{"purpose", "test"}});
    EXPECT(text(kms.decrypt(blob, {{"purpose", "test"}})) == "secret");
    auto e = EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT, kms.decrypt(blob, {{"purpose", "other"}}));
    EXPECT(e.aws_name() == "InvalidCiphertextException");
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT, kms.decrypt(blob));
    blob[blob.size() - 1] ^= 1;
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT, kms.decrypt(blob, {{"purpose", "test"}}));
}

void a_disabled_key_is_disabled_until_enabled_again() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key(nullptr, "to disable");
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_ENABLED);
    kms.disable_key(key);
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_DISABLED);
    auto e = EXPECT_ERROR(KMSCKS_DISABLED, kms.generate_data_key(key));
    EXPECT(e.aws_name() == "DisabledException");
    kms.enable_key(key);
    EXPECT(kms.generate_data_key(key).plaintext.size() == 32);
}

void arguments_c_would_misread_are_refused_naming_the_argument() {
    const kmscks::Client kms = kmscks::Client::open();
    // A std::string holding a NUL byte: C would read only what is before it.
    const std::string with_nul("alias/a\0b", 9);
    auto e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kms.encrypt(with_nul, "x"));
    EXPECT(e.aws_name() == "InvalidArgument");
    EXPECT(contains(e.detail(), "argument key_id: holds a NUL byte at offset 7"));
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.encrypt("alias/x", "x", {{std::string("k\0", 2), "v"}}));
    EXPECT(contains(e.detail(), "argument ctx"));
    // NULL where C allows none: kmscks itself refuses it, naming it.
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kms.create_hsm(static_cast<const char *>(nullptr),
                                                             "us-east-1a"));
    EXPECT(std::string(e.detail()) == "argument cluster_id: is NULL");
    EXPECT(std::string(e.what()) == "InvalidArgument: argument cluster_id: is NULL");
    // A duration that does not fit the C API's 32-bit milliseconds.
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.wait_connected("cks-0000000000000000", std::chrono::hours(24 * 365)));
    EXPECT(contains(e.detail(), "argument timeout_ms"));
    // A size too large for the operation is AWS's own validation error.
    EXPECT_ERROR(KMSCKS_VALIDATION, kms.generate_random(100000));
}

void a_client_is_move_only_and_a_moved_from_client_is_empty() {
    static_assert(!std::is_copy_constructible<kmscks::Client>::value, "move-only");
    static_assert(!std::is_copy_assignable<kmscks::Client>::value, "move-only");
    static_assert(std::is_nothrow_move_constructible<kmscks::Client>::value, "noexcept move");
    static_assert(std::is_nothrow_move_assignable<kmscks::Client>::value, "noexcept move");
    kmscks::Client a = kmscks::Client::open();
    const std::string key = a.create_key();
    kmscks_client *handle = a.get();
    kmscks::Client b = std::move(a);
    EXPECT(!a);
    EXPECT(a.get() == nullptr);
    EXPECT(b.get() == handle);
    // The key lives in the instance, which moved with the handle.
    EXPECT(b.key_state(key) == KMSCKS_KEY_STATE_ENABLED);
    // Calling an empty Client is an error, not a crash.
    auto e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, a.create_key());
    EXPECT(std::string(e.detail()) == "argument c: is NULL");
    // release() hands the handle over to C.
    kmscks_client *raw = b.release();
    EXPECT(!b);
    kmscks::Client c(raw);
    EXPECT(c.key_state(key) == KMSCKS_KEY_STATE_ENABLED);
    c.close();
    EXPECT(!c);
    c.close();  // twice is fine
}

void closing_or_replacing_a_client_releases_its_data_directory() {
    const std::string dir = scratch_dir + "/moved";
    kmscks::Client first = open_fast(dir.c_str());
    const std::string key = first.create_key();
    const kmscks::Bytes blob = first.encrypt(key, "kept on disk");
    // The directory is locked while a handle holds it.
    auto e = EXPECT_ERROR(KMSCKS_STORE_IN_USE, kmscks::Client::open(dir));
    EXPECT(e.aws_name() == "StoreInUseException");
    // Move-assigning closes the handle the Client held before.
    first = kmscks::Client::open();
    {
        const kmscks::Client second = open_fast(dir.c_str());
        EXPECT(text(second.decrypt(blob)) == "kept on disk");
    }  // the destructor closes it
    const kmscks::Client third = kmscks::Client::open(dir);
    EXPECT(third.key_state(key) == KMSCKS_KEY_STATE_ENABLED);
}

void secrets_come_back_whole_in_zeroizing_storage() {
    static_assert(
        std::is_same<kmscks::SecretBytes::allocator_type,
                     kmscks::ZeroizingAllocator<std::uint8_t>>::value,
        "plaintexts are in wiped storage");
    static_assert(std::is_same<decltype(std::declval<kmscks::Client &>().decrypt(
                                   kmscks::Bytes())),
                               kmscks::SecretBytes>::value,
                  "decrypt gives SecretBytes");
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    // Every kind of byte container is accepted as input; binary data (NULs) survives.
    std::string binary("a\0b\0c", 5);
    EXPECT(text(kms.decrypt(kms.encrypt(key, binary))) == binary);
    kmscks::Bytes bytes{1, 2, 3, 0, 255};
    EXPECT(kms.decrypt(kms.encrypt(key, bytes)) == kmscks::SecretBytes(bytes.begin(), bytes.end()));
    const std::uint8_t raw[4] = {9, 8, 7, 6};
    EXPECT(kms.decrypt(kms.encrypt(key, kmscks::ByteView(raw, sizeof raw))).size() == 4);
    // AWS's own rule: a plaintext is 1 to 4096 bytes.
    EXPECT_ERROR(KMSCKS_VALIDATION, kms.encrypt(key, kmscks::ByteView()));
    // Data keys and random bytes.
    const kmscks::DataKey dk = kms.generate_data_key(key, 64, {{"a", "b"}});
    EXPECT(dk.plaintext.size() == 64);
    EXPECT(kms.decrypt(dk.ciphertext, {{"a", "b"}}) == dk.plaintext);
    const kmscks::Bytes only_blob = kms.generate_data_key_without_plaintext(key, 16);
    EXPECT(kms.decrypt(only_blob).size() == 16);
    const kmscks::SecretBytes r1 = kms.generate_random(32), r2 = kms.generate_random(32);
    EXPECT(r1.size() == 32 && r1 != r2);
    // The wipe the allocator runs before freeing.
    unsigned char buf[16];
    std::memset(buf, 0xAA, sizeof buf);
    kmscks::detail::secure_wipe(buf, sizeof buf);
    EXPECT(std::all_of(buf, buf + sizeof buf, [](unsigned char b) { return b == 0; }));
}

// A byte container whose construction from a buffer's bytes fails.
struct ThrowsOnCopy {
    ThrowsOnCopy() = default;
    ThrowsOnCopy(const std::uint8_t *, const std::uint8_t *) { throw std::bad_alloc(); }
};

void a_buffer_is_freed_even_when_copying_it_throws() {
    const kmscks::Client kms = kmscks::Client::open();
    kmscks_buffer b{nullptr, 0};
    kmscks::detail::check(kmscks_generate_random(kms.get(), nullptr, 16, &b));
    EXPECT(b.data != nullptr && b.len == 16);
    bool thrown = false;
    try {
        kmscks::detail::take<ThrowsOnCopy>(b);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    EXPECT(thrown);
    // kmscks_buffer_free ran (it resets the struct after wiping and freeing the bytes).
    EXPECT(b.data == nullptr && b.len == 0);
}

void decrypt_names_the_key_and_re_encrypt_moves_a_blob_to_another_key() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string a = kms.create_key(), b = kms.create_key();
    const kmscks::Bytes blob = kms.encrypt(a, "moving", {{"v", "1"}});
    EXPECT(contains(kms.decrypt_with_key_id(blob, {{"v", "1"}}).key_arn, a));
    const kmscks::Bytes moved = kms.re_encrypt(blob, {{"v", "1"}}, b, {{"v", "2"}});
    const kmscks::Decrypted d = kms.decrypt_with_key_id(moved, {{"v", "2"}});
    EXPECT(text(d.plaintext) == "moving");
    EXPECT(contains(d.key_arn, b));
    EXPECT(d.key_arn.rfind("arn:aws:kms:", 0) == 0);
}

void batches_answer_each_item_with_its_own_code() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key(), disabled = kms.create_key();
    kms.disable_key(disabled);
    std::vector<kmscks::DataKeyResult> keys = kms.generate_data_key_batch({
        {key, 32, {{"n", "0"}}},
        {disabled, 32, {}},
        {"alias/missing", 16, {}},
        {key, 16, {}},
    });
    EXPECT(keys.size() == 4);
    EXPECT(keys[0].ok() && keys[0].value.plaintext.size() == 32);
    EXPECT(kms.decrypt(keys[0].value.ciphertext, {{"n", "0"}}) == keys[0].value.plaintext);
    EXPECT(keys[1].result == KMSCKS_DISABLED && keys[1].aws_name() == "DisabledException");
    EXPECT(keys[1].value.plaintext.empty() && keys[1].value.ciphertext.empty());
    EXPECT(keys[2].result == KMSCKS_NOT_FOUND);
    EXPECT(keys[3].ok() && keys[3].get().plaintext.size() == 16);
    auto e = EXPECT_ERROR(KMSCKS_DISABLED, keys[1].get());
    EXPECT(std::string(e.what()) == "DisabledException");

    const std::string first = "first", second = "second";
    std::vector<kmscks::EncryptResult> blobs = kms.encrypt_batch({
        {key, first, {{"i", "0"}}},
        {disabled, second, {}},
        {key, second, {}},
    });
    EXPECT(blobs.size() == 3);
    EXPECT(text(kms.decrypt(blobs[0].get(), {{"i", "0"}})) == "first");
    EXPECT(blobs[1].result == KMSCKS_DISABLED && blobs[1].value.empty());
    EXPECT(text(kms.decrypt(std::move(blobs[2]).get())) == "second");

    // An empty batch is an empty answer; a bad item stops the whole batch, naming it.
    EXPECT(kms.encrypt_batch({}).empty());
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.generate_data_key_batch({{key, 32, {}}, {std::string("a\0", 2), 32, {}}}));
    EXPECT(contains(e.detail(), "items[1].key_id"));
}

void keys_aliases_tags_and_deletion_go_through_the_wrapper() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key(std::nullopt, std::string("described"));
    EXPECT(contains(kms.describe_key_json(key), "\"Description\":\"described\""));
    kms.create_alias("alias/wrapper-test", key);
    EXPECT(text(kms.decrypt(kms.encrypt("alias/wrapper-test", "via alias"))) == "via alias");
    EXPECT(contains(kms.list_aliases_json(key), "alias/wrapper-test"));
    EXPECT(contains(kms.list_keys_json(), key));
    EXPECT_ERROR(KMSCKS_ALREADY_EXISTS, kms.create_alias("alias/wrapper-test", key));
    kms.delete_alias("alias/wrapper-test");
    EXPECT(!contains(kms.list_aliases_json(key), "alias/wrapper-test"));
    kms.tag_resource(key, {{"team", "c++"}, {"env", "test"}});
    kms.untag_resource(key, {"env"});
    const std::int64_t date = kms.schedule_key_deletion(key, 7);
    EXPECT(date > static_cast<std::int64_t>(std::time(nullptr)) + 6 * 86400);
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_PENDING_DELETION);
    EXPECT_ERROR(KMSCKS_KMS_INVALID_STATE, kms.encrypt(key, "x"));
    kms.cancel_key_deletion(key);
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_DISABLED);
}

void the_four_steps_and_the_store_states_through_the_wrapper() {
    const kmscks::Client kms = open_fast();
    const Store s = connected_store(kms, "wrapper-store");
    kmscks::ConnectionStatus st = kms.connection_state(s.store);
    EXPECT(st.state == KMSCKS_CONNECTION_STATE_CONNECTED);
    EXPECT(st.error_code == KMSCKS_CONNECTION_ERROR_CODE_NONE);
    EXPECT(contains(kms.describe_custom_key_stores_json(s.store), s.store));
    EXPECT(contains(kms.describe_custom_key_stores_json(), "wrapper-store"));
    const std::string key = kms.create_key(s.store);
    EXPECT(contains(kms.describe_key_json(key), "AWS_CLOUDHSM"));
    const kmscks::Bytes blob = kms.encrypt(key, "in the HSM");
    EXPECT(kms.generate_random(8, s.store).size() == 8);
    // Disconnected: the store's keys are unusable until it is connected again.
    kms.disconnect_custom_key_store(s.store);
    // wait_connected waits for DISCONNECTING to settle, then says it is not CONNECTED.
    EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE, kms.wait_connected(s.store));
    EXPECT(kms.connection_state(s.store).state == KMSCKS_CONNECTION_STATE_DISCONNECTED);
    EXPECT_ERROR(KMSCKS_KMS_INVALID_STATE, kms.decrypt(blob));
    // A wrong kmsuser password: the connection ends FAILED with INVALID_CREDENTIALS.
    kms.update_custom_key_store(s.store, "wrapper-store-renamed", "wrongPassw0rd");
    kms.connect_custom_key_store(s.store);
    auto e = EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE, kms.wait_connected(s.store));
    EXPECT(contains(e.detail(), "INVALID_CREDENTIALS"));
    st = kms.connection_state(s.store);
    EXPECT(st.state == KMSCKS_CONNECTION_STATE_FAILED);
    EXPECT(st.error_code == KMSCKS_CONNECTION_ERROR_CODE_INVALID_CREDENTIALS);
    // A FAILED store is disconnected before it can connect again (as on AWS).
    EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE, kms.connect_custom_key_store(s.store));
    kms.disconnect_custom_key_store(s.store);
    EXPECT(kms.wait_settled(s.store) == KMSCKS_CONNECTION_STATE_DISCONNECTED);
    // The crypto user's password changed to match: the store connects again.
    kms.change_crypto_user_password(s.cluster, "kmsuser", "wrongPassw0rd");
    kms.connect_custom_key_store(s.store);
    kms.wait_connected(s.store);
    EXPECT(text(kms.decrypt(blob)) == "in the HSM");
    EXPECT(contains(kms.describe_custom_key_stores_json(s.store), "wrapper-store-renamed"));
    // A store with keys cannot be deleted; HSMs can be removed.
    kms.disconnect_custom_key_store(s.store);
    EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE, kms.wait_connected(s.store));
    EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_HAS_CMKS, kms.delete_custom_key_store(s.store));
    const std::string extra = kms.create_hsm(s.cluster, "us-east-1a");
    kms.delete_hsm(s.cluster, extra);
    EXPECT_ERROR(KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND, kms.connect_custom_key_store("cks-1234567890abcdef0"));
}

void one_client_serves_eight_threads_at_once() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    std::atomic<int> good{0};
    std::vector<std::string> problems(8);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            try {
                for (int i = 0; i < 50; ++i) {
                    const std::string msg = "thread " + std::to_string(t) + " #" + std::to_string(i);
                    const kmscks::EncryptionContext ctx{{"thread", std::to_string(t)}};
                    if (text(kms.decrypt(kms.encrypt(key, msg, ctx), ctx)) != msg) {
                        problems[t] = "round trip differs";
                        return;
                    }
                    // Each thread's errors are its own.
                    try {
                        kms.decrypt(kmscks::Bytes{1, 2, 3}, ctx);
                        problems[t] = "garbage decrypted";
                        return;
                    } catch (const kmscks::Error &e) {
                        if (e.code() != KMSCKS_INVALID_CIPHERTEXT) {
                            problems[t] = e.what();
                            return;
                        }
                    }
                }
                ++good;
            } catch (const std::exception &e) {
                problems[t] = e.what();
            }
        });
    }
    for (std::thread &th : threads) th.join();
    for (const std::string &p : problems)
        if (!p.empty()) throw Failure{"a thread failed: " + p};
    EXPECT(good == 8);
}

// A binary secret in a byte array, a zero byte inside it, is read whole (not cut at the zero,
// as a decay to const char * and strlen would), and one with no zero byte is read to its end
// and no further. A char buffer cannot be passed as is: `kms.encrypt(key, buf)` with
// `char buf[16]` does not compile (a static_assert in ByteView asks for (buf, n): text or
// binary is the caller's to say), so it goes as a pointer and a length.
void a_byte_array_is_read_whole_zero_bytes_included_and_a_char_buffer_by_its_length() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    std::uint8_t secret[16];
    for (std::size_t i = 0; i < sizeof secret; ++i)
        secret[i] = static_cast<std::uint8_t>(0xA0 + i);
    secret[2] = 0;
    const kmscks::SecretBytes whole(secret, secret + sizeof secret);
    EXPECT(kmscks::ByteView(secret).size() == 16);
    EXPECT(kms.decrypt(kms.encrypt(key, secret)) == whole);

    unsigned char no_zero[16];
    std::memcpy(no_zero, secret, sizeof no_zero);
    no_zero[2] = 0x11;
    EXPECT(kms.decrypt(kms.encrypt(key, no_zero)) ==
           kmscks::SecretBytes(no_zero, no_zero + sizeof no_zero));

    const std::byte bytes[4] = {std::byte{1}, std::byte{0}, std::byte{0}, std::byte{2}};
    EXPECT(kms.decrypt(kms.encrypt(key, bytes)) == (kmscks::SecretBytes{1, 0, 0, 2}));
    // Byte arrays are binary: one initialized from a literal keeps its NUL.
    const unsigned char from_literal[] = "ab";
    EXPECT(kmscks::ByteView(from_literal).size() == 3);

    char buf[16];
    std::memcpy(buf, secret, sizeof buf);
    EXPECT(kms.decrypt(kms.encrypt(key, kmscks::ByteView(buf, sizeof buf))) == whole);
    const std::vector<kmscks::ItemResult<kmscks::Bytes>> batch =
        kms.encrypt_batch({kmscks::EncryptRequest{key, secret, {}}});
    EXPECT(batch.size() == 1 && kms.decrypt(batch[0].get()) == whole);
}

// A string literal is its text, without the NUL that ends it; a const char array (which
// cannot be told from a literal) likewise, or whole when it holds no NUL; one with a NUL
// before its last char, binary or not, is refused rather than guessed at.
void a_string_literal_is_its_text_and_a_const_char_array_with_an_inner_nul_is_refused() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    EXPECT(kmscks::ByteView("hello").size() == 5);
    EXPECT(kmscks::ByteView("").size() == 0);
    const kmscks::SecretBytes hello = kms.decrypt(kms.encrypt(key, "hello"));
    EXPECT(text(hello) == "hello" && hello.size() == 5);

    const char no_nul[3] = {'a', 'b', 'c'};
    EXPECT(text(kms.decrypt(kms.encrypt(key, no_nul))) == "abc");

    static const char binary[16] = {0x11, 0x22, 0x00, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19};
    kmscks::Error e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kms.encrypt(key, binary));
    EXPECT(contains(e.detail(), "const char[16]: it holds a NUL byte at offset 2"));
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kmscks::ByteView("a\0b"));
    EXPECT(contains(e.detail(), "const char[4]: it holds a NUL byte at offset 1"));

    // Pointers are C strings: read up to their first NUL.
    const char *pointer = "hi\0there";
    EXPECT(kmscks::ByteView(pointer).size() == 2);
    EXPECT(kmscks::ByteView(static_cast<const char *>(nullptr)).size() == 0);
    EXPECT(kmscks::ByteView(nullptr).size() == 0);
}

void the_library_and_header_versions_agree() {
    EXPECT(kmscks::version() == KMSCKS_VERSION_STRING);
}

}  // namespace

void connect_options_reach_the_c_library_and_are_checked_there() {
    const char *nowhere = "/nonexistent-dir/kmscks.sock";
    kmscks::ConnectOptions options;
    // Unset, and zero (sleep at once): accepted; nothing listens there.
    EXPECT_ERROR(KMSCKS_IO, kmscks::Client::connect(nowhere, options));
    options.reply_spin = std::chrono::microseconds(0);
    EXPECT_ERROR(KMSCKS_IO, kmscks::Client::connect(nowhere, options));
    // Past the library's limit: refused there, before any connection is tried.
    options.reply_spin = std::chrono::seconds(2);
    auto e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kmscks::Client::connect(nowhere, options));
    EXPECT(contains(e.detail(), "reply_spin_us is 2000000, over the limit of 1000000"));
    // Not a C value at all: refused by the wrapper, naming it.
    options.reply_spin = std::chrono::microseconds(-1);
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kmscks::Client::connect(nowhere, options));
    EXPECT(contains(e.detail(), "options.reply_spin"));
    // A reply timeout is accepted (what fails is the connection: nothing listens there), and
    // one that is not a C value is refused by the wrapper, naming it.
    options.reply_spin.reset();
    options.reply_timeout = std::chrono::seconds(5);
    EXPECT_ERROR(KMSCKS_IO, kmscks::Client::connect(nowhere, options));
    options.reply_timeout = std::chrono::milliseconds(-1);
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT, kmscks::Client::connect(nowhere, options));
    EXPECT(contains(e.detail(), "options.reply_timeout"));
}

int main(int argc, char **argv) {
    scratch_dir = argc >= 2 ? argv[1] : "/tmp";
    const std::vector<std::pair<const char *, void (*)()>> tests = {
        {"an_aws_error_carries_its_code_its_exception_name_and_kmscks_message",
         an_aws_error_carries_its_code_its_exception_name_and_kmscks_message},
        {"damaged_ciphertext_and_a_wrong_context_are_invalid_ciphertext",
         damaged_ciphertext_and_a_wrong_context_are_invalid_ciphertext},
        {"a_disabled_key_is_disabled_until_enabled_again",
         a_disabled_key_is_disabled_until_enabled_again},
        {"arguments_c_would_misread_are_refused_naming_the_argument",
         arguments_c_would_misread_are_refused_naming_the_argument},
        {"a_client_is_move_only_and_a_moved_from_client_is_empty",
         a_client_is_move_only_and_a_moved_from_client_is_empty},
        {"closing_or_replacing_a_client_releases_its_data_directory",
         closing_or_replacing_a_client_releases_its_data_directory},
        {"secrets_come_back_whole_in_zeroizing_storage",
         secrets_come_back_whole_in_zeroizing_storage},
        {"a_buffer_is_freed_even_when_copying_it_throws",
         a_buffer_is_freed_even_when_copying_it_throws},
        {"decrypt_names_the_key_and_re_encrypt_moves_a_blob_to_another_key",
         decrypt_names_the_key_and_re_encrypt_moves_a_blob_to_another_key},
        {"batches_answer_each_item_with_its_own_code", batches_answer_each_item_with_its_own_code},
        {"keys_aliases_tags_and_deletion_go_through_the_wrapper",
         keys_aliases_tags_and_deletion_go_through_the_wrapper},
        {"the_four_steps_and_the_store_states_through_the_wrapper",
         the_four_steps_and_the_store_states_through_the_wrapper},
        {"one_client_serves_eight_threads_at_once", one_client_serves_eight_threads_at_once},
        {"a_byte_array_is_read_whole_zero_bytes_included_and_a_char_buffer_by_its_length",
         a_byte_array_is_read_whole_zero_bytes_included_and_a_char_buffer_by_its_length},
        {"a_string_literal_is_its_text_and_a_const_char_array_with_an_inner_nul_is_refused",
         a_string_literal_is_its_text_and_a_const_char_array_with_an_inner_nul_is_refused},
        {"the_library_and_header_versions_agree", the_library_and_header_versions_agree},
        {"connect_options_reach_the_c_library_and_are_checked_there",
         connect_options_reach_the_c_library_and_are_checked_there},
    };
    int failures = 0;
    for (const auto &t : tests) {
        try {
            t.second();
            std::cout << "ok   " << t.first << "\n";
        } catch (const Failure &f) {
            ++failures;
            std::cout << "FAIL " << t.first << ": " << f.what << "\n";
        } catch (const std::exception &e) {
            ++failures;
            std::cout << "FAIL " << t.first << ": unexpected exception: " << e.what() << "\n";
        }
    }
    std::cout << (failures ? "wrapper: FAILED (" + std::to_string(failures) + ")"
                           : "wrapper: " + std::to_string(tests.size()) + " passed")
              << "\n";
    return failures ? 1 : 0;
}
