// wrapper_operations.cpp: tests of the C++ wrapper include/kmscks.hpp beyond symmetric
// encryption, in embedded mode: keys of other specs (HMAC, signing, RSA, key agreement), data
// key pairs, grants, imported key material and a cluster initialized with the caller's own CA
// then activated. Every method the wrapper has for these is called and its outputs checked.
//
// Built by tests/capi_cpp.rs with `c++ -std=c++17 -Wall -Wextra -Werror -pedantic` against the
// installed library; run as `wrapper_operations SCRATCH_DIR` (a directory it may create data
// dirs in). Prints one line per test and exits non-zero when any fails.

#include <kmscks.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// -- A minimal harness (as wrapper.cpp's) ---------------------------------------------------

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

std::string text(const kmscks::SecretBytes &bytes) {
    return std::string(bytes.begin(), bytes.end());
}

// Fewer PBKDF2 iterations for the HSM users' passwords: these tests protect nothing (never
// lower this for real data).
kmscks::Client open_fast(const char *data_dir = nullptr) {
    kmscks::OpenOptions options;
    options.hsm_password_iterations = 1000;
    return kmscks::Client::open(data_dir, options);
}

using kmscks::Bytes;

const char *const PRINCIPAL = "arn:aws:iam::111122223333:user/uid-4242";
const std::string MESSAGE = "the message, signed, MACed and encrypted";

std::string scratch_dir;  // argv[1]

// -- The caller's half of import and of cluster initialization ------------------------------
//
// kmscks leaves to the caller what AWS leaves to it: wrapping key material under the wrapping
// public key (RSA-OAEP) before importing it, and signing the cluster's CSR with the caller's
// CA. Programs use OpenSSL for both; these tests carry just enough of each (SHA-256, DER,
// base64, RSA with a public key) to need nothing but libkmscks. Not constant-time: test code.

std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

std::array<std::uint8_t, 32> sha256(kmscks::ByteView in) {
    static const std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    Bytes m(in.data(), in.data() + in.size());
    const std::uint64_t bits = static_cast<std::uint64_t>(in.size()) * 8;
    m.push_back(0x80);
    while (m.size() % 64 != 56) m.push_back(0);
    for (int i = 7; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
    for (std::size_t off = 0; off < m.size(); off += 64) {
        std::uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = std::uint32_t(m[off + 4 * i]) << 24 | std::uint32_t(m[off + 4 * i + 1]) << 16 |
                   std::uint32_t(m[off + 4 * i + 2]) << 8 | m[off + 4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
                      hh = h[7];
        for (int i = 0; i < 64; ++i) {
            const std::uint32_t t1 =
                hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const std::uint32_t t2 =
                (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        const std::uint32_t add[8] = {a, b, c, d, e, f, g, hh};
        for (int i = 0; i < 8; ++i) h[i] += add[i];
    }
    std::array<std::uint8_t, 32> out{};
    for (int i = 0; i < 32; ++i) out[i] = static_cast<std::uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
    return out;
}

std::string hex(kmscks::ByteView bytes) {
    std::string s;
    char two[3];
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::snprintf(two, sizeof two, "%02x", bytes.data()[i]);
        s += two;
    }
    return s;
}

// DER: one TLV read, or written.
struct Tlv {
    std::uint8_t tag;
    kmscks::ByteView content;
    kmscks::ByteView whole;  // tag and length included
};

class DerReader {
public:
    explicit DerReader(kmscks::ByteView der) : p_(der.data()), end_(der.data() + der.size()) {}
    bool done() const { return p_ == end_; }
    Tlv next() {
        const std::uint8_t *start = p_;
        if (end_ - p_ < 2) throw Failure{"DER: truncated TLV"};
        const std::uint8_t tag = *p_++;
        std::size_t len = *p_++;
        if (len & 0x80) {
            const std::size_t n = len & 0x7f;
            if (n == 0 || n > 4 || static_cast<std::size_t>(end_ - p_) < n)
                throw Failure{"DER: bad length"};
            len = 0;
            for (std::size_t i = 0; i < n; ++i) len = len << 8 | *p_++;
        }
        if (static_cast<std::size_t>(end_ - p_) < len) throw Failure{"DER: content overruns"};
        Tlv t{tag, kmscks::ByteView(p_, len), kmscks::ByteView()};
        p_ += len;
        t.whole = kmscks::ByteView(start, static_cast<std::size_t>(p_ - start));
        return t;
    }

private:
    const std::uint8_t *p_;
    const std::uint8_t *end_;
};

Bytes der(std::uint8_t tag, std::initializer_list<kmscks::ByteView> parts) {
    Bytes content;
    for (const kmscks::ByteView &part : parts)
        content.insert(content.end(), part.data(), part.data() + part.size());
    Bytes out{tag};
    if (content.size() < 0x80) {
        out.push_back(static_cast<std::uint8_t>(content.size()));
    } else {
        Bytes len;
        for (std::size_t n = content.size(); n; n >>= 8)
            len.insert(len.begin(), static_cast<std::uint8_t>(n));
        out.push_back(static_cast<std::uint8_t>(0x80 | len.size()));
        out.insert(out.end(), len.begin(), len.end());
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}

const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string pem(const std::string &label, const Bytes &body) {
    std::string b64;
    for (std::size_t i = 0; i < body.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, body.size() - i);
        std::uint32_t v = std::uint32_t(body[i]) << 16;
        if (n > 1) v |= std::uint32_t(body[i + 1]) << 8;
        if (n > 2) v |= body[i + 2];
        for (std::size_t j = 0; j < 4; ++j) b64 += j <= n ? B64[(v >> (18 - 6 * j)) & 63] : '=';
    }
    std::string out = "-----BEGIN " + label + "-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
    return out + "-----END " + label + "-----\n";
}

// The DER of the first PEM block of `text`.
Bytes unpem(const std::string &text) {
    const std::size_t begin = text.find("-----BEGIN ");
    const std::size_t body = text.find('\n', begin);
    const std::size_t end = text.find("-----END ", body);
    if (begin == std::string::npos || body == std::string::npos || end == std::string::npos)
        throw Failure{"not PEM: " + text};
    Bytes out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = body; i < end; ++i) {
        const char *at = std::strchr(B64, text[i]);
        if (text[i] == '\0' || at == nullptr) continue;  // line breaks, padding
        acc = acc << 6 | static_cast<std::uint32_t>(at - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>(acc >> bits));
        }
    }
    return out;
}

// RSA with a public key: m^e mod n on little-endian 32-bit limbs, with Montgomery products.
using Limbs = std::vector<std::uint32_t>;

Limbs limbs(kmscks::ByteView big_endian, std::size_t k) {
    Limbs x(k, 0);
    for (std::size_t i = 0; i < big_endian.size(); ++i) {
        const std::size_t bit = 8 * (big_endian.size() - 1 - i);
        x[bit / 32] |= std::uint32_t(big_endian.data()[i]) << (bit % 32);
    }
    return x;
}

bool less(const Limbs &a, const Limbs &b) {
    for (std::size_t i = a.size(); i-- > 0;)
        if (a[i] != b[i]) return a[i] < b[i];
    return false;
}

// a -= b, modulo 2^(32 k).
void subtract(Limbs &a, const Limbs &b) {
    std::uint64_t borrow = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::uint64_t d = std::uint64_t(a[i]) - b[i] - borrow;
        a[i] = static_cast<std::uint32_t>(d);
        borrow = (d >> 32) & 1;
    }
}

// a b / 2^(32 k) mod n, for a, b < n (n odd; n0inv = -1/n[0] mod 2^32).
Limbs montgomery(const Limbs &a, const Limbs &b, const Limbs &n, std::uint32_t n0inv) {
    const std::size_t k = n.size();
    Limbs t(k + 2, 0);
    for (std::size_t i = 0; i < k; ++i) {
        std::uint64_t carry = 0;
        for (std::size_t j = 0; j < k; ++j) {
            const std::uint64_t s = t[j] + std::uint64_t(a[j]) * b[i] + carry;
            t[j] = static_cast<std::uint32_t>(s);
            carry = s >> 32;
        }
        std::uint64_t s = t[k] + carry;
        t[k] = static_cast<std::uint32_t>(s);
        t[k + 1] = static_cast<std::uint32_t>(s >> 32);
        const std::uint32_t m = t[0] * n0inv;
        carry = (t[0] + std::uint64_t(m) * n[0]) >> 32;
        for (std::size_t j = 1; j < k; ++j) {
            s = t[j] + std::uint64_t(m) * n[j] + carry;
            t[j - 1] = static_cast<std::uint32_t>(s);
            carry = s >> 32;
        }
        s = t[k] + carry;
        t[k - 1] = static_cast<std::uint32_t>(s);
        t[k] = t[k + 1] + static_cast<std::uint32_t>(s >> 32);
        t[k + 1] = 0;
    }
    Limbs r(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(k));
    if (t[k] != 0 || !less(r, n)) subtract(r, n);
    return r;
}

// An RSA public key's modulus and exponent (big-endian, no leading zero), in its DER.
struct RsaPublicKey {
    kmscks::ByteView n, e;
};

RsaPublicKey rsa_key(kmscks::ByteView spki) {
    // SubjectPublicKeyInfo { AlgorithmIdentifier, BIT STRING { 0, RSAPublicKey { n, e } } }
    DerReader outer(DerReader(spki).next().content);
    outer.next();
    const Tlv bits = outer.next();
    EXPECT(bits.tag == 0x03 && bits.content.size() > 1 && bits.content.data()[0] == 0);
    DerReader key(DerReader(kmscks::ByteView(bits.content.data() + 1, bits.content.size() - 1))
                      .next()
                      .content);
    RsaPublicKey k{key.next().content, key.next().content};
    while (k.n.size() && k.n.data()[0] == 0) k.n = kmscks::ByteView(k.n.data() + 1, k.n.size() - 1);
    return k;
}

// `message` (less than the modulus) raised to the exponent of the RSA public key `spki`.
Bytes rsa_public(kmscks::ByteView spki, const Bytes &message) {
    const RsaPublicKey key = rsa_key(spki);
    const kmscks::ByteView n_bytes = key.n, e_bytes = key.e;
    const std::size_t size = n_bytes.size(), k = (size + 3) / 4;
    const Limbs n = limbs(n_bytes, k);
    std::uint32_t inv = n[0];  // 1/n[0] mod 2^32 by Newton's iteration (n[0] odd)
    for (int i = 0; i < 5; ++i) inv *= 2 - n[0] * inv;
    const std::uint32_t n0inv = 0u - inv;
    // R^2 mod n, R = 2^(32 k): 1 doubled 64 k times.
    Limbs r2(k, 0);
    r2[0] = 1;
    for (std::size_t i = 0; i < 64 * k; ++i) {
        const bool carry = r2[k - 1] >> 31;
        for (std::size_t j = k; j-- > 0;) r2[j] = r2[j] << 1 | (j ? r2[j - 1] >> 31 : 0);
        if (carry || !less(r2, n)) subtract(r2, n);
    }
    const Limbs base = montgomery(limbs(message, k), r2, n, n0inv);
    Limbs acc = base;
    bool started = false;
    for (std::size_t i = 0; i < e_bytes.size(); ++i) {
        for (int bit = 7; bit >= 0; --bit) {
            const bool set = (e_bytes.data()[i] >> bit) & 1;
            if (!started) {
                started = set;  // the top bit: acc is base already
                continue;
            }
            acc = montgomery(acc, acc, n, n0inv);
            if (set) acc = montgomery(acc, base, n, n0inv);
        }
    }
    Limbs one(k, 0);
    one[0] = 1;
    const Limbs x = montgomery(acc, one, n, n0inv);
    Bytes out(size);
    for (std::size_t i = 0; i < size; ++i) {
        const std::size_t bit = 8 * (size - 1 - i);
        out[i] = static_cast<std::uint8_t>(x[bit / 32] >> (bit % 32));
    }
    return out;
}

// MGF1 with SHA-256.
Bytes mgf1(const Bytes &seed, std::size_t len) {
    Bytes out;
    for (std::uint32_t counter = 0; out.size() < len; ++counter) {
        Bytes block = seed;
        for (int i = 3; i >= 0; --i) block.push_back(static_cast<std::uint8_t>(counter >> (8 * i)));
        const std::array<std::uint8_t, 32> h = sha256(block);
        out.insert(out.end(), h.begin(), h.end());
    }
    out.resize(len);
    return out;
}

// RSAES-OAEP with SHA-256 and MGF1-SHA-256, no label (RFC 8017 7.1.1): what
// "RSAES_OAEP_SHA_256" wraps key material with. `seed` is 32 random bytes.
Bytes rsa_oaep_sha256(const Bytes &spki, kmscks::ByteView material, kmscks::ByteView seed) {
    const std::size_t k = rsa_key(spki).n.size();
    EXPECT(material.size() + 2 * 32 + 2 <= k && seed.size() == 32);
    const std::array<std::uint8_t, 32> label_hash = sha256(kmscks::ByteView());
    Bytes db(label_hash.begin(), label_hash.end());
    db.resize(k - material.size() - 32 - 2, 0);
    db.push_back(0x01);
    db.insert(db.end(), material.data(), material.data() + material.size());
    const Bytes seed_bytes(seed.data(), seed.data() + seed.size());
    const Bytes db_mask = mgf1(seed_bytes, db.size());
    for (std::size_t i = 0; i < db.size(); ++i) db[i] ^= db_mask[i];
    Bytes masked_seed = seed_bytes;
    const Bytes seed_mask = mgf1(db, 32);
    for (std::size_t i = 0; i < 32; ++i) masked_seed[i] ^= seed_mask[i];
    Bytes em{0x00};
    em.insert(em.end(), masked_seed.begin(), masked_seed.end());
    em.insert(em.end(), db.begin(), db.end());
    return rsa_public(spki, em);
}

// X.509, as little as InitializeCluster reads: names, a validity, and certificates signed by
// a P-256 signing key in kmscks (ECDSA with SHA-256).
Bytes x509_name(const std::string &common_name) {
    const Bytes cn_oid{0x06, 0x03, 0x55, 0x04, 0x03};
    return der(0x30, {der(0x31, {der(0x30, {cn_oid, der(0x0c, {common_name})})})});
}

Bytes certificate(const kmscks::Client &kms, const std::string &ca_key, std::uint8_t serial,
                  const Bytes &issuer, const Bytes &subject, kmscks::ByteView spki, bool ca) {
    const Bytes ecdsa_with_sha256 =
        der(0x30, {Bytes{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}});
    const Bytes version3{0xa0, 0x03, 0x02, 0x01, 0x02};
    const Bytes validity = der(0x30, {der(0x17, {"250101000000Z"}), der(0x17, {"491231235959Z"})});
    // basicConstraints (critical) CA:TRUE
    const Bytes ca_extension = der(
        0xa3, {der(0x30, {der(0x30, {Bytes{0x06, 0x03, 0x55, 0x1d, 0x13}, Bytes{0x01, 0x01, 0xff},
                                     der(0x04, {der(0x30, {Bytes{0x01, 0x01, 0xff}})})})})});
    const Bytes tbs = der(0x30, {version3, der(0x02, {Bytes{serial}}), ecdsa_with_sha256, issuer,
                                 validity, subject, spki, ca ? ca_extension : Bytes()});
    const Bytes signature = kms.sign(ca_key, "ECDSA_SHA_256", tbs);
    return der(0x30, {tbs, ecdsa_with_sha256, der(0x03, {Bytes{0x00}, signature})});
}

// -- Tests ----------------------------------------------------------------------------------

void outputs_come_back_as_the_types_the_docs_promise() {
    using C = const kmscks::Client &;
    static_assert(std::is_same<decltype(std::declval<C>().generate_mac("", "", "")), Bytes>::value,
                  "a MAC is public bytes");
    static_assert(std::is_same<decltype(std::declval<C>().sign("", "", "")), Bytes>::value,
                  "a signature is public bytes");
    static_assert(std::is_same<decltype(std::declval<C>().get_public_key("")), Bytes>::value,
                  "a public key is public bytes");
    static_assert(
        std::is_same<decltype(std::declval<C>().encrypt_with_algorithm("", "", "")), Bytes>::value,
        "a ciphertext is public bytes");
    static_assert(std::is_same<decltype(std::declval<C>().decrypt_with_algorithm("", "", "")),
                               kmscks::SecretBytes>::value,
                  "a plaintext is secret");
    static_assert(std::is_same<decltype(std::declval<C>().derive_shared_secret("", "", "")),
                               kmscks::SecretBytes>::value,
                  "a shared secret is secret");
    static_assert(std::is_same<decltype(kmscks::DataKeyPair::private_key_plaintext),
                               kmscks::SecretBytes>::value,
                  "a private key is secret");
    static_assert(std::is_same<decltype(std::declval<C>().verify_mac("", "", "", "")), void>::value,
                  "a MAC that does not verify throws");
    static_assert(std::is_same<decltype(std::declval<C>().verify("", "", "", nullptr, "")),
                               void>::value,
                  "a signature that does not verify throws");
    // The test helpers' own checks: SHA-256 of "abc" (FIPS 180-2), and textbook RSA
    // (n = 61 · 53 = 3233, e = 17: 65 encrypts to 2790).
    EXPECT(hex(sha256("abc")) ==
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const Bytes rsa_encryption{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
    const Bytes tiny = der(
        0x30, {der(0x30, {rsa_encryption, Bytes{0x05, 0x00}}),
               der(0x03, {Bytes{0x00}, der(0x30, {der(0x02, {Bytes{0x0c, 0xa1}}),
                                                  der(0x02, {Bytes{0x11}})})})});
    EXPECT(hex(rsa_public(tiny, Bytes{65})) == "0ae6");
}

void a_mac_verifies_and_a_wrong_one_is_kms_invalid_mac() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key_of_spec("HMAC_256", "GENERATE_VERIFY_MAC");
    EXPECT(contains(kms.describe_key_json(key), "\"KeySpec\":\"HMAC_256\""));
    const Bytes mac = kms.generate_mac(key, "HMAC_SHA_256", MESSAGE);
    EXPECT(mac.size() == 32);
    EXPECT(kms.generate_mac(key, "HMAC_SHA_256", MESSAGE) == mac);
    kms.verify_mac(key, "HMAC_SHA_256", MESSAGE, mac);
    auto e = EXPECT_ERROR(KMSCKS_KMS_INVALID_MAC,
                          kms.verify_mac(key, "HMAC_SHA_256", "another message", mac));
    EXPECT(e.aws_name() == "KMSInvalidMacException");
    Bytes flipped = mac;
    flipped[0] ^= 1;
    EXPECT_ERROR(KMSCKS_KMS_INVALID_MAC, kms.verify_mac(key, "HMAC_SHA_256", MESSAGE, flipped));
    // The key's only algorithm is its own; an encryption key makes no MAC.
    EXPECT_ERROR(KMSCKS_INVALID_KEY_USAGE, kms.generate_mac(key, "HMAC_SHA_512", MESSAGE));
    EXPECT_ERROR(KMSCKS_INVALID_KEY_USAGE,
                 kms.generate_mac(kms.create_key(), "HMAC_SHA_256", MESSAGE));
}

void a_signature_verifies_for_its_message_or_digest_and_a_wrong_one_is_invalid_signature() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key_of_spec("ECC_NIST_P256", "SIGN_VERIFY");
    const Bytes pub = kms.get_public_key(key);
    EXPECT(pub.size() == 91 && pub[0] == 0x30);  // P-256 SubjectPublicKeyInfo
    const Bytes sig = kms.sign(key, "ECDSA_SHA_256", MESSAGE);
    EXPECT(!sig.empty() && sig[0] == 0x30);  // DER ECDSA-Sig-Value
    kms.verify(key, "ECDSA_SHA_256", MESSAGE, nullptr, sig);
    kms.verify(key, "ECDSA_SHA_256", MESSAGE, "RAW", sig);
    // The digest signed is the message's: either verifies against the other.
    const std::array<std::uint8_t, 32> digest = sha256(MESSAGE);
    const Bytes digest_sig = kms.sign(key, "ECDSA_SHA_256", digest, std::string("DIGEST"));
    kms.verify(key, "ECDSA_SHA_256", MESSAGE, std::nullopt, digest_sig);
    kms.verify(key, "ECDSA_SHA_256", digest, "DIGEST", sig);
    auto e = EXPECT_ERROR(KMSCKS_KMS_INVALID_SIGNATURE,
                          kms.verify(key, "ECDSA_SHA_256", "another message", nullptr, sig));
    EXPECT(e.aws_name() == "KMSInvalidSignatureException");
    EXPECT_ERROR(KMSCKS_KMS_INVALID_SIGNATURE,
                 kms.verify(key, "ECDSA_SHA_256", digest, nullptr, sig));
    EXPECT_ERROR(KMSCKS_INVALID_KEY_USAGE, kms.sign(key, "ECDSA_SHA_384", MESSAGE));
    // A symmetric key has no public key.
    EXPECT_ERROR(KMSCKS_UNSUPPORTED_OPERATION, kms.get_public_key(kms.create_key()));
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.sign(key, "ECDSA_SHA_256", MESSAGE, std::string("RAW\0", 4)));
    EXPECT(contains(e.detail(), "argument message_type_or_null: holds a NUL byte"));
}

void rsa_encryption_names_its_algorithm_and_two_agreement_keys_derive_one_secret() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string rsa = kms.create_key_of_spec("RSA_2048", "ENCRYPT_DECRYPT");
    const Bytes ct = kms.encrypt_with_algorithm(rsa, "RSAES_OAEP_SHA_256", MESSAGE);
    EXPECT(ct.size() == 256);
    EXPECT(text(kms.decrypt_with_algorithm(rsa, "RSAES_OAEP_SHA_256", ct)) == MESSAGE);
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT,
                 kms.decrypt_with_algorithm(rsa, "RSAES_OAEP_SHA_1", ct));
    // An RSA ciphertext takes no encryption context.
    EXPECT_ERROR(KMSCKS_VALIDATION,
                 kms.encrypt_with_algorithm(rsa, "RSAES_OAEP_SHA_256", MESSAGE, {{"a", "b"}}));
    auto e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                          kms.encrypt_with_algorithm(rsa, "RSA_MAYBE", MESSAGE));
    EXPECT(contains(e.detail(), "encryption_algorithm"));
    // "SYMMETRIC_DEFAULT" is encrypt and decrypt, context included.
    const std::string key = kms.create_key();
    const Bytes blob = kms.encrypt_with_algorithm(key, "SYMMETRIC_DEFAULT", "sym", {{"a", "b"}});
    EXPECT(text(kms.decrypt(blob, {{"a", "b"}})) == "sym");
    EXPECT(text(kms.decrypt_with_algorithm(key, "SYMMETRIC_DEFAULT", blob, {{"a", "b"}})) ==
           "sym");
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT,
                 kms.decrypt_with_algorithm(key, "SYMMETRIC_DEFAULT", blob, {{"a", "c"}}));

    const std::string a = kms.create_key_of_spec("ECC_NIST_P256", "KEY_AGREEMENT");
    const std::string b = kms.create_key_of_spec("ECC_NIST_P256", "KEY_AGREEMENT");
    const kmscks::SecretBytes ab = kms.derive_shared_secret(a, "ECDH", kms.get_public_key(b));
    const kmscks::SecretBytes ba = kms.derive_shared_secret(b, "ECDH", kms.get_public_key(a));
    EXPECT(ab.size() == 32 && ab == ba);
    EXPECT(kms.derive_shared_secret(a, "ECDH", kms.get_public_key(a)) != ab);
    EXPECT_ERROR(KMSCKS_VALIDATION, kms.derive_shared_secret(a, "ECDH", MESSAGE));
    EXPECT_ERROR(KMSCKS_INVALID_KEY_USAGE,
                 kms.derive_shared_secret(rsa, "ECDH", kms.get_public_key(b)));
}

void a_data_key_pair_comes_with_its_private_key_sealed_under_the_kms_key() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    const kmscks::DataKeyPair pair = kms.generate_data_key_pair(key, "ECC_NIST_P256", {{"p", "1"}});
    EXPECT(!pair.private_key_plaintext.empty() && pair.private_key_plaintext[0] == 0x30);
    EXPECT(pair.public_key.size() == 91 && pair.public_key[0] == 0x30);
    EXPECT(kms.decrypt(pair.private_key_ciphertext, {{"p", "1"}}) == pair.private_key_plaintext);
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT, kms.decrypt(pair.private_key_ciphertext));
    const kmscks::DataKeyPairWithoutPlaintext sealed =
        kms.generate_data_key_pair_without_plaintext(key, "ECC_NIST_EDWARDS25519");
    EXPECT(sealed.public_key.size() == 44);
    EXPECT(!kms.decrypt(sealed.private_key_ciphertext).empty());
    auto e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                          kms.generate_data_key_pair(key, "RSA_1024"));
    EXPECT(contains(e.detail(), "key_pair_spec"));
    EXPECT_ERROR(KMSCKS_NOT_FOUND,
                 kms.generate_data_key_pair_without_plaintext("alias/none", "ECC_NIST_P256"));
}

void grants_are_made_with_their_operations_and_constraint_then_revoked() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_key();
    const kmscks::Grant g =
        kms.create_grant(key, PRINCIPAL, {"Encrypt", "Decrypt"}, {{"team", "c++"}});
    EXPECT(g.grant_id.size() == 64);
    EXPECT(!g.grant_token.empty() && g.grant_token != g.grant_id);
    const kmscks::Grant unconstrained = kms.create_grant(key, PRINCIPAL, {"DescribeKey"});
    EXPECT(unconstrained.grant_id != g.grant_id);
    kms.revoke_grant(key, g.grant_id);
    auto e = EXPECT_ERROR(KMSCKS_NOT_FOUND, kms.revoke_grant(key, g.grant_id));
    EXPECT(e.aws_name() == "NotFoundException");
    kms.revoke_grant(key, unconstrained.grant_id);
    // An operation AWS does not have: kmscks names it by its index.
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.create_grant(key, PRINCIPAL, {"Encrypt", "Juggle"}));
    EXPECT(contains(e.detail(), "operations[1]"));
    // What C would cut short: refused by the wrapper, naming the argument.
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.create_grant(key, PRINCIPAL, {std::string("Encrypt\0", 8)}));
    EXPECT(contains(e.detail(), "argument operations: holds a NUL byte"));
    e = EXPECT_ERROR(KMSCKS_INVALID_ARGUMENT,
                     kms.create_grant(key, PRINCIPAL, {"Encrypt"}, {{"a", std::string("b\0", 2)}}));
    EXPECT(contains(e.detail(), "argument subset"));
}

void key_material_wrapped_by_the_caller_is_imported_deleted_and_imported_again() {
    const kmscks::Client kms = kmscks::Client::open();
    const std::string key = kms.create_external_key("imported from C++");
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_PENDING_IMPORT);
    EXPECT(contains(kms.describe_key_json(key), "\"Origin\":\"EXTERNAL\""));
    EXPECT(kms.key_state(kms.create_external_key()) == KMSCKS_KEY_STATE_PENDING_IMPORT);
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    kmscks::ImportParameters p =
        kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048");
    EXPECT(p.public_key.size() > 256 && p.public_key[0] == 0x30);
    EXPECT(!p.import_token.empty());
    EXPECT(p.valid_to > now + 23 * 3600 && p.valid_to < now + 25 * 3600);
    EXPECT(rsa_key(p.public_key).n.size() == 256);

    // Material that does not unwrap; then the caller's wrapping of 32 random bytes.
    EXPECT_ERROR(KMSCKS_INVALID_CIPHERTEXT,
                 kms.import_key_material(key, p.import_token, Bytes(256, 1)));
    const kmscks::SecretBytes material = kms.generate_random(32);
    const Bytes wrapped = rsa_oaep_sha256(p.public_key, material, kms.generate_random(32));
    const std::string id = kms.import_key_material(key, p.import_token, wrapped);
    EXPECT(id.size() == 64 && id.find_first_not_of("0123456789abcdef") == std::string::npos);
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_ENABLED);
    const Bytes blob = kms.encrypt(key, "under imported material");
    EXPECT(text(kms.decrypt(blob)) == "under imported material");

    kms.delete_imported_key_material(key);
    EXPECT(kms.key_state(key) == KMSCKS_KEY_STATE_PENDING_IMPORT);
    auto e = EXPECT_ERROR(KMSCKS_KMS_INVALID_STATE, kms.decrypt(blob));
    EXPECT(e.aws_name() == "KMSInvalidStateException");

    // Only the same material comes back; this time it expires (in a day).
    p = kms.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048");
    const kmscks::SecretBytes other = kms.generate_random(32);
    EXPECT_ERROR(KMSCKS_INCORRECT_KEY_MATERIAL,
                 kms.import_key_material(
                     key, p.import_token,
                     rsa_oaep_sha256(p.public_key, other, kms.generate_random(32))));
    EXPECT(kms.import_key_material(key, p.import_token,
                                   rsa_oaep_sha256(p.public_key, material,
                                                   kms.generate_random(32)),
                                   now + 86400) == id);
    EXPECT(contains(kms.describe_key_json(key), "KEY_MATERIAL_EXPIRES"));
    EXPECT(text(kms.decrypt(blob)) == "under imported material");
    // A key of AWS's own material has nothing to import or delete.
    const std::string own = kms.create_key();
    EXPECT_ERROR(KMSCKS_UNSUPPORTED_OPERATION, kms.delete_imported_key_material(own));
    EXPECT_ERROR(KMSCKS_UNSUPPORTED_OPERATION,
                 kms.get_parameters_for_import(own, "RSAES_OAEP_SHA_256", "RSA_2048"));
}

void a_cluster_initialized_with_our_own_ca_is_activated_then_backs_a_store() {
    const kmscks::Client kms = open_fast();
    const std::string cluster = kms.create_cluster();
    kms.create_hsm(cluster, "us-east-1a");
    kms.create_hsm(cluster, "us-east-1b");
    // Our CA: a signing key in kmscks, and its self-signed certificate.
    const std::string ca_key = kms.create_key_of_spec("ECC_NIST_P256", "SIGN_VERIFY");
    const Bytes ca_name = x509_name("kmscks C++ test CA");
    const std::string anchor = pem(
        "CERTIFICATE", certificate(kms, ca_key, 1, ca_name, ca_name, kms.get_public_key(ca_key),
                                   true));
    // The cluster's certificate: the subject and key of its CSR, issued by our CA.
    const Bytes csr = unpem(kms.get_cluster_csr(cluster));
    DerReader info(DerReader(DerReader(csr).next().content).next().content);
    info.next();  // version
    const Tlv subject = info.next(), spki = info.next();
    const std::string signed_cert = pem(
        "CERTIFICATE",
        certificate(kms, ca_key, 2, ca_name, Bytes(subject.whole.data(),
                                                   subject.whole.data() + subject.whole.size()),
                    spki.whole, false));

    // Only an INITIALIZED cluster is activated.
    auto e = EXPECT_ERROR(KMSCKS_CLOUD_HSM_INVALID_REQUEST,
                          kms.activate_cluster(cluster, "adminPassw0rd"));
    EXPECT(contains(e.detail(), "INITIALIZED"));
    EXPECT(unpem(kms.initialize_cluster(cluster, signed_cert + anchor)) == unpem(anchor));
    // INITIALIZED is not ACTIVE: no crypto user yet.
    EXPECT_ERROR(KMSCKS_CLOUD_HSM_INVALID_REQUEST,
                 kms.create_crypto_user(cluster, "kmsuser", "kmsuserPassw0rd"));
    kms.activate_cluster(cluster, "adminPassw0rd");
    EXPECT_ERROR(KMSCKS_CLOUD_HSM_INVALID_REQUEST, kms.activate_cluster(cluster, "adminPassw0rd"));
    EXPECT_ERROR(KMSCKS_CLOUD_HSM_RESOURCE_NOT_FOUND,
                 kms.activate_cluster("cluster-doesnotexist", "adminPassw0rd"));

    // ACTIVE: a store on it, trusting our CA, connects and keeps keys.
    kms.create_crypto_user(cluster, "kmsuser", "kmsuserPassw0rd");
    const std::string store =
        kms.create_custom_key_store("wrapper-own-ca", cluster, anchor, "kmsuserPassw0rd");
    kms.connect_custom_key_store(store);
    kms.wait_connected(store);
    const std::string key = kms.create_key(store);
    EXPECT(text(kms.decrypt(kms.encrypt(key, "behind our CA"))) == "behind our CA");
}

void what_these_methods_made_is_there_after_reopening_the_data_directory() {
    const std::string dir = scratch_dir + "/operations";
    std::string hmac, signer, grantee_key, grant, imported;
    Bytes mac, pub, blob;
    {
        const kmscks::Client kms = open_fast(dir.c_str());
        hmac = kms.create_key_of_spec("HMAC_256", "GENERATE_VERIFY_MAC");
        mac = kms.generate_mac(hmac, "HMAC_SHA_256", MESSAGE);
        signer = kms.create_key_of_spec("ECC_NIST_P256", "SIGN_VERIFY");
        pub = kms.get_public_key(signer);
        grantee_key = kms.create_key();
        grant = kms.create_grant(grantee_key, PRINCIPAL, {"Decrypt"}).grant_id;
        imported = kms.create_external_key();
        const kmscks::ImportParameters p =
            kms.get_parameters_for_import(imported, "RSAES_OAEP_SHA_256", "RSA_3072");
        EXPECT(rsa_key(p.public_key).n.size() == 384);
        kms.import_key_material(
            imported, p.import_token,
            rsa_oaep_sha256(p.public_key, kms.generate_random(32), kms.generate_random(32)));
        blob = kms.encrypt(imported, "kept");
    }
    const kmscks::Client kms = open_fast(dir.c_str());
    kms.verify_mac(hmac, "HMAC_SHA_256", MESSAGE, mac);
    EXPECT(kms.get_public_key(signer) == pub);
    kms.verify(signer, "ECDSA_SHA_256", MESSAGE, nullptr,
               kms.sign(signer, "ECDSA_SHA_256", MESSAGE));
    EXPECT(text(kms.decrypt(blob)) == "kept");
    kms.revoke_grant(grantee_key, grant);
    kms.delete_imported_key_material(imported);
    EXPECT(kms.key_state(imported) == KMSCKS_KEY_STATE_PENDING_IMPORT);
}

}  // namespace

int main(int argc, char **argv) {
    scratch_dir = argc >= 2 ? argv[1] : "/tmp";
    const std::vector<std::pair<const char *, void (*)()>> tests = {
        {"outputs_come_back_as_the_types_the_docs_promise",
         outputs_come_back_as_the_types_the_docs_promise},
        {"a_mac_verifies_and_a_wrong_one_is_kms_invalid_mac",
         a_mac_verifies_and_a_wrong_one_is_kms_invalid_mac},
        {"a_signature_verifies_for_its_message_or_digest_and_a_wrong_one_is_invalid_signature",
         a_signature_verifies_for_its_message_or_digest_and_a_wrong_one_is_invalid_signature},
        {"rsa_encryption_names_its_algorithm_and_two_agreement_keys_derive_one_secret",
         rsa_encryption_names_its_algorithm_and_two_agreement_keys_derive_one_secret},
        {"a_data_key_pair_comes_with_its_private_key_sealed_under_the_kms_key",
         a_data_key_pair_comes_with_its_private_key_sealed_under_the_kms_key},
        {"grants_are_made_with_their_operations_and_constraint_then_revoked",
         grants_are_made_with_their_operations_and_constraint_then_revoked},
        {"key_material_wrapped_by_the_caller_is_imported_deleted_and_imported_again",
         key_material_wrapped_by_the_caller_is_imported_deleted_and_imported_again},
        {"a_cluster_initialized_with_our_own_ca_is_activated_then_backs_a_store",
         a_cluster_initialized_with_our_own_ca_is_activated_then_backs_a_store},
        {"what_these_methods_made_is_there_after_reopening_the_data_directory",
         what_these_methods_made_is_there_after_reopening_the_data_directory},
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
    std::cout << (failures ? "wrapper_operations: FAILED (" + std::to_string(failures) + ")"
                           : "wrapper_operations: " + std::to_string(tests.size()) + " passed")
              << "\n";
    return failures ? 1 : 0;
}
