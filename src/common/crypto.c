/*
 * crypto.c: hashing, comparison and randomness through OpenSSL.
 */
#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
s2a_sha256(const void *data, size_t len, uint8_t out[S2A_SHA256_LEN])
{
    unsigned int n = S2A_SHA256_LEN;

    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

bool
s2a_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int
s2a_random_bytes(void *buf, size_t len)
{
    if (len > (size_t) 0x7fffffff) {
        return S2A_ERROR;
    }
    return RAND_bytes(buf, (int) len) == 1 ? S2A_OK : S2A_ERROR;
}

void
s2a_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int
pbkdf2(const char *password, const uint8_t *salt, size_t saltlen,
       unsigned iterations, uint8_t out[S2A_SHA256_LEN])
{
    size_t pwlen = strlen(password);

    if (pwlen > 4096) {
        return S2A_ERROR;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int) pwlen, salt, (int) saltlen,
                          (int) iterations, EVP_sha256(), S2A_SHA256_LEN, out)
        != 1)
    {
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_password_hash(const char *password, char *out, size_t outlen)
{
    uint8_t salt[16], hash[S2A_SHA256_LEN];
    char salt_hex[33], hash_hex[65];
    int n;

    if (s2a_random_bytes(salt, sizeof(salt)) != S2A_OK
        || pbkdf2(password, salt, sizeof(salt), S2A_PBKDF2_ITERATIONS, hash)
            != S2A_OK)
    {
        return S2A_ERROR;
    }
    s2a_hex(salt, sizeof(salt), salt_hex);
    s2a_hex(hash, sizeof(hash), hash_hex);
    n = snprintf(out, outlen, "pbkdf2-sha256$%u$%s$%s",
                 (unsigned) S2A_PBKDF2_ITERATIONS, salt_hex, hash_hex);
    OPENSSL_cleanse(hash, sizeof(hash));
    return (n < 0 || (size_t) n >= outlen) ? S2A_ERROR : S2A_OK;
}

static int
unhex(const char *in, size_t n, uint8_t *out)
{
    size_t i;
    int hi, lo;

    for (i = 0; i < n; i++) {
        hi = OPENSSL_hexchar2int((unsigned char) in[2 * i]);
        lo = OPENSSL_hexchar2int((unsigned char) in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return S2A_ERROR;
        }
        out[i] = (uint8_t) (hi << 4 | lo);
    }
    return S2A_OK;
}

bool
s2a_password_verify(const char *password, const char *stored)
{
    uint8_t salt[16], want[S2A_SHA256_LEN], got[S2A_SHA256_LEN];
    unsigned long iterations;
    const char *p, *salt_hex, *hash_hex;
    char *end;
    bool ok;

    if (strncmp(stored, "pbkdf2-sha256$", 14) != 0) {
        return false;
    }
    p = stored + 14;
    iterations = strtoul(p, &end, 10);
    if (end == p || *end != '$' || iterations < 1000 || iterations > 10000000) {
        return false;
    }
    salt_hex = end + 1;
    if (strlen(salt_hex) != 32 + 1 + 64 || salt_hex[32] != '$') {
        return false;
    }
    hash_hex = salt_hex + 33;
    if (unhex(salt_hex, sizeof(salt), salt) != S2A_OK
        || unhex(hash_hex, sizeof(want), want) != S2A_OK
        || pbkdf2(password, salt, sizeof(salt), (unsigned) iterations, got)
            != S2A_OK)
    {
        return false;
    }
    ok = s2a_ct_equal(got, want, sizeof(got));
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

void
s2a_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                uint8_t out[S2A_SHA256_LEN])
{
    unsigned int n = S2A_SHA256_LEN;

    if (HMAC(EVP_sha256(), key, (int) keylen, data, len, out, &n) == NULL) {
        /* Cannot happen with SHA-256; never leave a guessable value. */
        (void) s2a_random_bytes(out, S2A_SHA256_LEN);
    }
}

void
s2a_derive_key(const uint8_t master[32], const char *label, uint8_t out[32])
{
    s2a_hmac_sha256(master, 32, label, strlen(label), out);
}

void
s2a_api_key_mac(const uint8_t vkey[32], const char *key,
                uint8_t out[S2A_SHA256_LEN])
{
    uint8_t h[S2A_SHA256_LEN];

    s2a_sha256(key, strlen(key), h);
    s2a_hmac_sha256(vkey, 32, h, sizeof(h), out);
    OPENSSL_cleanse(h, sizeof(h));
}

#define GCM_NONCE 12
#define GCM_TAG   16

char *
s2a_seal(const uint8_t key[32], const char *plaintext)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    char *out = NULL;
    size_t plen, blen;
    int n, fin;

    if (plaintext == NULL) {
        return NULL;
    }
    plen = strlen(plaintext);
    blen = GCM_NONCE + plen + GCM_TAG;
    buf = malloc(blen);
    out = malloc(3 + 4 * ((blen + 2) / 3) + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || out == NULL || ctx == NULL
        || s2a_random_bytes(buf, GCM_NONCE) != S2A_OK
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) != 1
        || EVP_EncryptUpdate(ctx, buf + GCM_NONCE, &n,
                             (const unsigned char *) plaintext, (int) plen)
            != 1
        || EVP_EncryptFinal_ex(ctx, buf + GCM_NONCE + n, &fin) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG,
                               buf + GCM_NONCE + plen)
            != 1)
    {
        free(out);
        out = NULL;
        goto done;
    }
    memcpy(out, "v1:", 3);
    EVP_EncodeBlock((unsigned char *) out + 3, buf, (int) blen);
done:
    EVP_CIPHER_CTX_free(ctx);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, blen);
        free(buf);
    }
    return out;
}

char *
s2a_open(const uint8_t key[32], const char *sealed)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    char *out = NULL;
    size_t slen, blen, clen;
    int n, fin, dec;

    if (sealed == NULL || strncmp(sealed, "v1:", 3) != 0) {
        return NULL;
    }
    slen = strlen(sealed + 3);
    if (slen % 4 != 0 || slen < 4) {
        return NULL;
    }
    buf = malloc(slen / 4 * 3 + 1);
    if (buf == NULL) {
        return NULL;
    }
    dec = EVP_DecodeBlock(buf, (const unsigned char *) sealed + 3, (int) slen);
    if (dec < 0) {
        goto done;
    }
    blen = (size_t) dec;
    if (sealed[3 + slen - 1] == '=') {
        blen--;
    }
    if (sealed[3 + slen - 2] == '=') {
        blen--;
    }
    if (blen < GCM_NONCE + GCM_TAG) {
        goto done;
    }
    clen = blen - GCM_NONCE - GCM_TAG;
    out = malloc(clen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (out == NULL || ctx == NULL
        || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) != 1
        || EVP_DecryptUpdate(ctx, (unsigned char *) out, &n, buf + GCM_NONCE,
                             (int) clen)
            != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG,
                               buf + GCM_NONCE + clen)
            != 1
        || EVP_DecryptFinal_ex(ctx, (unsigned char *) out + n, &fin) != 1)
    {
        if (out != NULL) {
            OPENSSL_cleanse(out, clen);
            free(out);
        }
        out = NULL;
        goto done;
    }
    out[clen] = '\0';
done:
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return out;
}

int
s2a_key_file_load(const char *path, uint8_t key[32])
{
    uint8_t fresh[32];
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* A key file left readable by others is made private again. */
        (void) fchmod(fd, 0600);
        n = read(fd, key, 32);
        close(fd);
        if (n != 32) {
            errno = EINVAL;
            return S2A_ERROR;
        }
        return S2A_OK;
    }
    if (errno != ENOENT || s2a_random_bytes(fresh, sizeof(fresh)) != S2A_OK) {
        return S2A_ERROR;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return S2A_ERROR;
    }
    n = write(fd, fresh, sizeof(fresh));
    if (n != (ssize_t) sizeof(fresh) || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        errno = EIO;
        return S2A_ERROR;
    }
    close(fd);
    memcpy(key, fresh, 32);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return S2A_OK;
}

unsigned char *
s2a_base64_decode(const char *in, size_t len, size_t *outlen)
{
    EVP_ENCODE_CTX *ctx;
    unsigned char *out = NULL;
    char *norm;
    size_t i, n = 0;
    int got = 0, tail = 0, ok = 0;

    if (len > (size_t) INT_MAX - 4) {
        return NULL;
    }
    /* Clients send the URL-safe alphabet, line breaks and unpadded
     * text too: normalise to the standard form OpenSSL reads. */
    norm = malloc(len + 4);
    if (norm == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t') {
            continue;
        }
        norm[n++] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    while (n % 4 != 0 && n % 4 != 1) {
        norm[n++] = '=';
    }
    out = malloc(n / 4 * 3 + 4);
    ctx = EVP_ENCODE_CTX_new();
    if (out != NULL && ctx != NULL && n > 0) {
        EVP_DecodeInit(ctx);
        ok = EVP_DecodeUpdate(ctx, out, &got, (const unsigned char *) norm,
                              (int) n)
                >= 0
            && EVP_DecodeFinal(ctx, out + got, &tail) == 1 && got + tail > 0;
    }
    EVP_ENCODE_CTX_free(ctx);
    free(norm);
    if (!ok) {
        free(out);
        return NULL;
    }
    *outlen = (size_t) (got + tail);
    return out;
}

char *
s2a_base64_encode(const unsigned char *in, size_t len)
{
    char *out;

    if (len > (size_t) INT_MAX / 4 * 3 - 3) {
        return NULL;
    }
    out = malloc((len + 2) / 3 * 4 + 1);
    if (out != NULL) {
        EVP_EncodeBlock((unsigned char *) out, in, (int) len);
    }
    return out;
}
