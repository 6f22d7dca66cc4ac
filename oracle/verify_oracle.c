/*
 * verify_oracle: the real OpenSSL's X509_verify_cert, driven the way libssl's
 * ssl_verify_cert_chain drives it in a TLS client (ssl/ssl_cert.c), one request per line.
 *
 * Built twice by `cargo xtask oracle build` (oracle/README.md): against the host's OpenSSL 3.0
 * and against Debian 11's OpenSSL 1.1.1w (unpacked with dpkg -x, linked with -rpath). The same
 * source compiles against both.
 *
 * Request (one line, fields separated by one space):
 *   V <time> <level> <purpose> <depth> <stop> <npeer> <ntrust> <hex DER>...
 *     time     validation time, Unix seconds (X509_VERIFY_PARAM_set_time)
 *     level    security level, handed over as the auth level (X509_VERIFY_PARAM_set_auth_level)
 *     purpose  0: none ("default" parameters, as `openssl verify`); 1: "ssl_server"
 *     depth    X509_VERIFY_PARAM_set_depth (100 when nobody sets one)
 *     stop     1: the callback returns 0 (ENFORCED); 0: it returns 1 (PERMISSIVE)
 *     npeer    certificates the peer sent, leaf first; they are the untrusted pool, leaf included
 *     ntrust   trust store certificates, added to an X509_STORE in order
 *   T <code>   X509_verify_cert_error_string(code)
 *   I          the library's version string
 *
 * Answer (one line):
 *   R <ret> <error> <chain> <errors>
 *     ret      X509_verify_cert's return value
 *     error    X509_STORE_CTX_get_error at the end
 *     chain    the built chain, leaf first: p<i> (peer position) or t<i> (trust position), ","
 *              separated, "-" when empty
 *     errors   every call of the verify callback with ok == 0, as code:depth, "," separated,
 *              "-" when none
 *   D <i>      the peer's certificate at position i does not decode (libssl refuses the
 *              Certificate message before verifying anything)
 *   X <text>   the request could not be read
 *
 * Decoded certificates are kept between requests (at most CACHE_MAX, then all dropped), by their
 * DER, their side (peer or trust store) and their occurrence among identical DER on that side in
 * the request, so that within a request every certificate is a distinct X509 object exactly as if
 * each had just been decoded. d2i_X509 is most of OpenSSL 3.0's time here (its public-key
 * decoders), and a fuzz run sends the same certificates many times. Nothing a verification reads
 * depends on whether the object is new: the extension cache (x509v3_cache_extensions) is a
 * function of the DER alone, and OpenSSL keeps no verdict on the object. MRALAB_ORACLE_NO_CACHE=1
 * in the environment decodes every certificate afresh (a run with it gives the same answers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#define MAX_ERRORS 256
#define CACHE_SLOTS 8192 /* a power of two */
#define CACHE_MAX 4096

struct cached {
    unsigned long long hash;
    int side, occurrence;
    long len;
    unsigned char *der;
    X509 *x;
};

static struct cached cache[CACHE_SLOTS];
static int ncached;
static int cache_off;

static unsigned long long cache_hash(const unsigned char *der, long len, int side, int occurrence)
{
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
    long i;
    for (i = 0; i < len; i++) {
        h ^= der[i];
        h *= 1099511628211ULL;
    }
    return h ^ ((unsigned long long)side << 40) ^ ((unsigned long long)occurrence << 48);
}

static struct cached *cache_slot(unsigned long long h, const unsigned char *der, long len, int side,
                                 int occurrence)
{
    size_t at = (size_t)h & (CACHE_SLOTS - 1);
    while (cache[at].der != NULL) {
        struct cached *c = &cache[at];
        if (c->hash == h && c->side == side && c->occurrence == occurrence && c->len == len
            && memcmp(c->der, der, (size_t)len) == 0)
            return c;
        at = (at + 1) & (CACHE_SLOTS - 1);
    }
    return &cache[at];
}

static void cache_clear(void)
{
    int i;
    for (i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].der != NULL) {
            X509_free(cache[i].x);
            free(cache[i].der);
        }
        memset(&cache[i], 0, sizeof(cache[i]));
    }
    ncached = 0;
}

/*
 * The certificate of these DER bytes, with a reference of the caller's own; NULL when it does
 * not decode or has trailing bytes (libssl's d2i in tls_process_server_certificate refuses them).
 */
static X509 *decode(const unsigned char *der, long len, int side, int occurrence)
{
    const unsigned char *q = der;
    unsigned long long h = 0;
    struct cached *slot = NULL;
    X509 *x;

    if (!cache_off) {
        h = cache_hash(der, len, side, occurrence);
        slot = cache_slot(h, der, len, side, occurrence);
        if (slot->der != NULL) {
            X509_up_ref(slot->x);
            return slot->x;
        }
    }
    x = d2i_X509(NULL, &q, len);
    if (x != NULL && q != der + len) {
        X509_free(x);
        x = NULL;
    }
    if (x == NULL || cache_off)
        return x;
    if (ncached >= CACHE_MAX) {
        cache_clear();
        slot = cache_slot(h, der, len, side, occurrence);
    }
    slot->der = malloc((size_t)len);
    if (slot->der == NULL)
        return x;
    memcpy(slot->der, der, (size_t)len);
    slot->hash = h;
    slot->side = side;
    slot->occurrence = occurrence;
    slot->len = len;
    slot->x = x;
    X509_up_ref(x);
    ncached++;
    return x;
}

static int stop_at_first;
static int nerrors;
static int errors[MAX_ERRORS][2];

static int callback(int ok, X509_STORE_CTX *ctx)
{
    if (!ok) {
        if (nerrors < MAX_ERRORS) {
            errors[nerrors][0] = X509_STORE_CTX_get_error(ctx);
            errors[nerrors][1] = X509_STORE_CTX_get_error_depth(ctx);
            nerrors++;
        }
        return stop_at_first ? 0 : 1;
    }
    return ok;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the hex token at *p into buf; returns the byte count or -1. */
static long unhex(char **p, unsigned char *buf)
{
    char *s = *p;
    long n = 0;
    while (*s == ' ')
        s++;
    while (*s && *s != ' ' && *s != '\n') {
        int hi = hexval((unsigned char)s[0]);
        int lo = s[1] ? hexval((unsigned char)s[1]) : -1;
        if (hi < 0 || lo < 0)
            return -1;
        buf[n++] = (unsigned char)(hi * 16 + lo);
        s += 2;
    }
    *p = s;
    return n;
}

static void answer_verify(char *line, size_t cap)
{
    char *p = line + 1;
    long long when;
    int level, purpose, depth, stop, npeer, ntrust, consumed = 0;
    unsigned char *buf = NULL, **ders = NULL;
    long *lens = NULL, used = 0;
    STACK_OF(X509) *peer = NULL;
    X509 **trusted = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    int i;

    if (sscanf(p, "%lld %d %d %d %d %d %d%n", &when, &level, &purpose, &depth, &stop, &npeer, &ntrust,
               &consumed) != 7 || npeer < 1 || ntrust < 0) {
        printf("X bad header\n");
        return;
    }
    p += consumed;
    buf = malloc(cap / 2 + 1);
    peer = sk_X509_new_null();
    trusted = calloc((size_t)ntrust + 1, sizeof(X509 *));
    store = X509_STORE_new();
    if (buf == NULL || peer == NULL || trusted == NULL || store == NULL) {
        printf("X out of memory\n");
        goto end;
    }
    ders = calloc((size_t)(npeer + ntrust), sizeof(unsigned char *));
    lens = calloc((size_t)(npeer + ntrust), sizeof(long));
    if (ders == NULL || lens == NULL) {
        printf("X out of memory\n");
        goto end;
    }
    for (i = 0; i < npeer + ntrust; i++) {
        long n;
        int side = i < npeer ? 0 : 1, occurrence = 0, j;
        X509 *x;
        ders[i] = buf + used;
        n = unhex(&p, ders[i]);
        if (n < 0) {
            printf("X bad hex\n");
            goto end;
        }
        lens[i] = n;
        used += n;
        for (j = side ? npeer : 0; j < i; j++)
            if (lens[j] == n && memcmp(ders[j], ders[i], (size_t)n) == 0)
                occurrence++;
        x = decode(ders[i], n, side, occurrence);
        if (i < npeer) {
            if (x == NULL) {
                printf("D %d\n", i);
                goto end;
            }
            sk_X509_push(peer, x);
        } else if (x != NULL) {
            trusted[i - npeer] = x;
            X509_STORE_add_cert(store, x);
        }
    }
    ERR_clear_error();

    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || !X509_STORE_CTX_init(ctx, store, sk_X509_value(peer, 0), peer)) {
        printf("X init\n");
        goto end;
    }
    {
        /* The order of ssl_verify_cert_chain. */
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_auth_level(param, level);
        if (purpose == 1)
            X509_STORE_CTX_set_default(ctx, "ssl_server");
        X509_VERIFY_PARAM_set_depth(param, depth);
        X509_VERIFY_PARAM_set_time(param, (time_t)when);
    }
    stop_at_first = stop;
    nerrors = 0;
    X509_STORE_CTX_set_verify_cb(ctx, callback);
    {
        int ret = X509_verify_cert(ctx);
        STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
        int k, j;
        printf("R %d %d ", ret, X509_STORE_CTX_get_error(ctx));
        if (chain == NULL || sk_X509_num(chain) == 0)
            printf("-");
        for (k = 0; chain != NULL && k < sk_X509_num(chain); k++) {
            X509 *c = sk_X509_value(chain, k);
            char where = '?';
            int at = 0;
            for (j = 0; j < npeer && where == '?'; j++)
                if (sk_X509_value(peer, j) == c) {
                    where = 'p';
                    at = j;
                }
            for (j = 0; j < ntrust && where == '?'; j++)
                if (trusted[j] == c) {
                    where = 't';
                    at = j;
                }
            for (j = 0; j < npeer && where == '?'; j++)
                if (X509_cmp(sk_X509_value(peer, j), c) == 0) {
                    where = 'p';
                    at = j;
                }
            for (j = 0; j < ntrust && where == '?'; j++)
                if (trusted[j] != NULL && X509_cmp(trusted[j], c) == 0) {
                    where = 't';
                    at = j;
                }
            printf("%s%c%d", k ? "," : "", where, at);
        }
        printf(" ");
        if (nerrors == 0)
            printf("-");
        for (k = 0; k < nerrors; k++)
            printf("%s%d:%d", k ? "," : "", errors[k][0], errors[k][1]);
        printf("\n");
    }
end:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(peer, X509_free);
    if (trusted != NULL)
        for (i = 0; i < ntrust; i++)
            X509_free(trusted[i]);
    free(trusted);
    free(ders);
    free(lens);
    free(buf);
    ERR_clear_error();
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    const char *off = getenv("MRALAB_ORACLE_NO_CACHE");

    cache_off = off != NULL && strcmp(off, "1") == 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (line[0] == 'V') {
            answer_verify(line, (size_t)len);
        } else if (line[0] == 'T') {
            printf("%s\n", X509_verify_cert_error_string(atol(line + 1)));
        } else if (line[0] == 'I') {
            printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
        } else {
            printf("X unknown request\n");
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
