// quickstart.cpp: the four steps of AWS's custom key store guide, in C++, with the RAII
// wrapper kmscks.hpp over libkmscks (the same flow as quickstart.c, without the bookkeeping:
// every string and buffer is freed, and key material wiped, by the wrapper).
//
//   1. a CloudHSM cluster with two HSMs in two Availability Zones;
//   2. the cluster initialized (kmscks makes the CA) and a crypto user `kmsuser`;
//   3. a custom key store on that cluster, connected;
//   4. a KMS key in the store: encrypt, decrypt, data keys (one and a batch).
//
// Build and run (after `ffi/install`, see docs/c-api.md):
//
//   c++ -std=c++17 ffi/examples/quickstart.cpp -o quickstart-cpp $(pkg-config --cflags --libs kmscks)
//   ./quickstart-cpp                  # kmscks inside this process, nothing on disk
//   ./quickstart-cpp DATA_DIR         # inside this process, state kept in DATA_DIR
//   ./quickstart-cpp --socket [PATH]  # through kmscksd (PATH omitted: the default socket)
//
// Failures throw kmscks::Error, which carries the result code and the AWS exception name.
// The PBKDF2 strength of the HSM password hashes is kmscks's default, as real programs keep it.

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <kmscks.hpp>

namespace {

// How to reach kmscks: the only part that differs between the modes.
kmscks::Client open_from_args(int argc, char **argv) {
    if (argc >= 2 && std::strcmp(argv[1], "--socket") == 0) {
        const char *socket = argc >= 3 ? argv[2] : nullptr;  // nullptr: the default socket
        std::cout << "kmscks " << kmscks::version() << ", through kmscksd on "
                  << (socket ? socket : "the default socket") << "\n";
        return kmscks::Client::connect(socket);
    }
    if (argc <= 2 && (argc < 2 || argv[1][0] != '-')) {
        const char *data_dir = argc == 2 ? argv[1] : nullptr;  // nullptr: nothing on disk
        std::cout << "kmscks " << kmscks::version() << ", inside this process, "
                  << (data_dir ? std::string("data directory ") + data_dir : "in memory")
                  << "\n";
        return kmscks::Client::open(data_dir);
    }
    throw std::invalid_argument(std::string("usage: ") + argv[0] +
                                " [DATA_DIR | --socket [PATH]]");
}

}  // namespace

int main(int argc, char **argv) {
    try {
        const kmscks::Client kms = open_from_args(argc, argv);

        // Step 1: a cluster and two HSMs in two Availability Zones.
        const std::string cluster = kms.create_cluster();
        const std::string hsm_a = kms.create_hsm(cluster, "us-east-1a");
        const std::string hsm_b = kms.create_hsm(cluster, "us-east-1b");
        std::cout << "1. cluster " << cluster << " with HSMs " << hsm_a << " (us-east-1a) and "
                  << hsm_b << " (us-east-1b)\n";

        // Step 2: initialize it (kmscks makes the CA; keep its certificate, the trust
        // anchor) and create the crypto user KMS logs in as.
        const std::string trust_anchor = kms.initialize_cluster(cluster);
        kms.create_crypto_user(cluster, "kmsuser", "kmsuserPassw0rd");
        std::cout << "2. cluster initialized (trust anchor: " << trust_anchor.size()
                  << " bytes of PEM), crypto user kmsuser\n";

        // Step 3: the custom key store (named after the cluster, so that the program can run
        // again on the same data directory or daemon), connected.
        const std::string store_name = "quickstart-cpp-" + cluster;
        const std::string store =
            kms.create_custom_key_store(store_name, cluster, trust_anchor, "kmsuserPassw0rd");
        kms.connect_custom_key_store(store);
        kms.wait_connected(store);
        std::cout << "3. custom key store " << store << " (" << store_name << ") CONNECTED\n";

        // Step 4: a KMS key whose material lives in the cluster, and what it is for.
        const std::string key = kms.create_key(store, "quickstart key");
        std::cout << "4. KMS key " << key << " in " << store << "\n";

        const kmscks::EncryptionContext context{{"purpose", "quickstart"}};
        const std::string message = "hello from C++";
        const kmscks::Bytes blob = kms.encrypt(key, message, context);
        const kmscks::Decrypted decrypted = kms.decrypt_with_key_id(blob, context);
        const std::string text(decrypted.plaintext.begin(), decrypted.plaintext.end());
        std::cout << "   encrypt: " << message.size() << " bytes -> " << blob.size()
                  << "-byte ciphertext; decrypt: \"" << text << "\" (key " << decrypted.key_arn
                  << ")\n";
        if (text != message) throw std::runtime_error("the decrypted text differs");

        // Envelope encryption: a data key to use locally, kept only in encrypted form.
        const kmscks::DataKey data_key = kms.generate_data_key(key, 32, context);
        const kmscks::SecretBytes again = kms.decrypt(data_key.ciphertext, context);
        if (again != data_key.plaintext) throw std::runtime_error("the data key differs");
        std::cout << "   data key: " << data_key.plaintext.size() << " bytes, "
                  << data_key.ciphertext.size() << " bytes encrypted; decrypts to the same key\n";

        // Many data keys in one call (the engine's batched path); each item has its own
        // result, here one for a key that does not exist.
        std::vector<kmscks::DataKeyRequest> requests(3, kmscks::DataKeyRequest{key, 32, context});
        requests[2].key_id = "alias/no-such-key";
        const std::vector<kmscks::DataKeyResult> results = kms.generate_data_key_batch(requests);
        std::cout << "   batch of " << results.size() << " data keys:";
        for (const kmscks::DataKeyResult &r : results) std::cout << " " << r.aws_name();
        std::cout << "\n";
        if (!results[0].ok() || !results[1].ok() || results[2].result != KMSCKS_NOT_FOUND)
            throw std::runtime_error("the batch answered unexpected codes");

        std::cout << "quickstart: OK\n";
        return 0;
    } catch (const kmscks::Error &e) {
        std::cerr << "quickstart: " << e.what() << " (code " << e.code() << ")\n";
    } catch (const std::exception &e) {
        std::cerr << "quickstart: " << e.what() << "\n";
    }
    return 1;
}
