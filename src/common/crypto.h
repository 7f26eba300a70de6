/*
 * crypto.h: the few primitives the daemon needs, on top of OpenSSL.
 */
#ifndef S2A_CRYPTO_H
#define S2A_CRYPTO_H

#include "common/core.h"

#define S2A_SHA256_LEN 32

/* SHA-256 of `len` bytes. */
void s2a_sha256(const void *data, size_t len, uint8_t out[S2A_SHA256_LEN]);

/* Constant-time equality of two equal-length buffers. */
bool s2a_ct_equal(const void *a, const void *b, size_t len);

/* Cryptographically random bytes. Returns S2A_OK or S2A_ERROR. */
int s2a_random_bytes(void *buf, size_t len);

/* Lower-case hex of `len` bytes into `out` (2*len+1 bytes). */
void s2a_hex(const uint8_t *in, size_t len, char *out);

/* HMAC-SHA256 of `len` bytes under a key of `keylen` bytes. */
void s2a_hmac_sha256(const void *key, size_t keylen, const void *data,
                     size_t len, uint8_t out[S2A_SHA256_LEN]);

/*
 * A key for one purpose, derived from the master key (secret.key):
 * HMAC-SHA256(master, label). Knowing it reveals neither the master key
 * nor any other derived key.
 */
void s2a_derive_key(const uint8_t master[32], const char *label,
                    uint8_t out[32]);

/*
 * API keys at rest: HMAC-SHA256 under the API key verification key (see
 * S2A_APIKEY_LABEL) of the key's SHA-256, stored as S2A_APIKEY_PREFIX +
 * hex. Hashing first lets a stored bare SHA-256 of an older version be
 * converted without knowing the key.
 */
#define S2A_APIKEY_LABEL  "sora2api api key verification v1"
#define S2A_APIKEY_PREFIX "hmac-sha256:"
void s2a_api_key_mac(const uint8_t vkey[32], const char *key,
                     uint8_t out[S2A_SHA256_LEN]);

#define S2A_PASSWORD_HASH_LEN 160
#define S2A_PBKDF2_ITERATIONS 210000

/*
 * Hashes `password` with PBKDF2-HMAC-SHA256 and a random salt into `out`
 * as "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>".
 * Returns S2A_OK or S2A_ERROR.
 */
int s2a_password_hash(const char *password, char *out, size_t outlen);

/* True when `password` matches `stored` (constant-time comparison). */
bool s2a_password_verify(const char *password, const char *stored);

/*
 * Secrets at rest: AES-256-GCM under a 32-byte key. `s2a_seal` writes
 * "v1:" + base64(nonce | ciphertext | tag) into a new string (caller
 * frees); `s2a_open` reverses it (NULL when the key is wrong or the data
 * was altered). NULL input gives NULL output.
 */
char *s2a_seal(const uint8_t key[32], const char *plaintext);
char *s2a_open(const uint8_t key[32], const char *sealed);

/*
 * Loads the key from `path`, creating it (mode 0600, random) on first
 * use. Returns S2A_OK or S2A_ERROR with errno set.
 */
int s2a_key_file_load(const char *path, uint8_t key[32]);

/*
 * Decodes base64 (standard or URL-safe alphabet, padding optional, line
 * breaks allowed) into a new buffer of *outlen bytes (caller frees).
 * NULL when the input is not base64.
 */
unsigned char *s2a_base64_decode(const char *in, size_t len, size_t *outlen);

/*
 * Encodes `len` bytes as standard base64 with padding, NUL-terminated, in
 * a new buffer (caller frees). NULL when out of memory.
 */
char *s2a_base64_encode(const unsigned char *in, size_t len);

#endif /* S2A_CRYPTO_H */
