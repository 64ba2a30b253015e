#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctls.h"

const int CTLS_WANT_READ = -1;
const int CTLS_WANT_WRITE = -2;
const int CTLS_CLOSED = -3;
const int CTLS_EOF = -4;
const int CTLS_SYSCALL = -5;
const int CTLS_FAILED = -6;

// OpenSSL's socket BIO writes with write(2), not send(2) with MSG_NOSIGNAL, so a write to a
// socket whose peer has gone raises SIGPIPE (socket(7), EPIPE), and momin does not ignore
// SIGPIPE process-wide. SIGPIPE from write(2) is sent to the writing thread, so each call runs
// with it blocked in this thread, and one that the call raised is taken back with sigtimedwait(2)
// before the mask is restored: the process's dispositions are left alone.
typedef struct {
    sigset_t saved;
    int was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *guard) {
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    guard->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &guard->saved);
}

static void sigpipe_restore(sigpipe_guard *guard) {
    int saved_errno = errno;
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    if (!guard->was_pending && sigismember(&pending, SIGPIPE)) {
        struct timespec now = {0, 0};
        while (sigtimedwait(&pipe, NULL, &now) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &guard->saved, NULL);
    errno = saved_errno;
}

static void clear_failure(ctls_failure *failure) {
    failure->sys_errno = 0;
    failure->verify_result = X509_V_OK;
    failure->message[0] = '\0';
}

// The first error OpenSSL queued on this thread (the cause; later ones are its callers).
static void take_errors(ctls_failure *failure) {
    unsigned long code = ERR_get_error();
    if (code != 0) ERR_error_string_n(code, failure->message, sizeof failure->message);
    ERR_clear_error();
}

// SSL_get_error(3) of a call that returned result, as a CTLS_* code.
static int classify(SSL *ssl, int result, int call_errno, ctls_failure *failure) {
    switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ:
        return CTLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return CTLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return CTLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        // OpenSSL 3 reports a bare EOF as SSL_ERROR_SSL (below); errno 0 is the older form.
        take_errors(failure);
        if (call_errno == 0) return CTLS_EOF;
        failure->sys_errno = call_errno;
        return CTLS_SYSCALL;
    default: {
        unsigned long code = ERR_peek_error();
        if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return CTLS_EOF;
        }
        failure->verify_result = SSL_get_verify_result(ssl);
        if (failure->verify_result != X509_V_OK) {
            ERR_clear_error();
            snprintf(failure->message, sizeof failure->message, "%s", X509_verify_cert_error_string(failure->verify_result));
        } else {
            take_errors(failure);
        }
        return CTLS_FAILED;
    }
    }
}

ctls_context *ctls_context_new(const char *ca_file, ctls_failure *failure) {
    // ALPN protocol list: length-prefixed names (RFC 7301 §3.1).
    static const unsigned char alpn[] = "\x08http/1.1";
    clear_failure(failure);
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) goto fail;
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) goto fail;
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(context, ca_file, NULL) != 1) goto fail;
    } else if (SSL_CTX_set_default_verify_paths(context) != 1) {
        goto fail;
    }
    // Returns 0 on success, unlike its neighbours (SSL_CTX_set_alpn_protos(3)).
    if (SSL_CTX_set_alpn_protos(context, alpn, sizeof alpn - 1) != 0) goto fail;
    // A write may take part of the buffer (one record at a time), and a retry after WANT_WRITE
    // may pass the same bytes at another address (SSL_CTX_set_mode(3)).
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return context;
fail:
    take_errors(failure);
    SSL_CTX_free(context);
    return NULL;
}

void ctls_context_free(ctls_context *context) { SSL_CTX_free(context); }

ctls_connection *ctls_connection_new(ctls_context *context, int fd, const char *server_name, ctls_failure *failure) {
    unsigned char address[16];
    clear_failure(failure);
    ERR_clear_error();
    SSL *ssl = SSL_new(context);
    if (ssl == NULL) goto fail;
    // A socket BIO with BIO_NOCLOSE: the caller keeps the descriptor.
    if (SSL_set_fd(ssl, fd) != 1) goto fail;
    SSL_set_connect_state(ssl);
    if (inet_pton(AF_INET, server_name, address) == 1 || inet_pton(AF_INET6, server_name, address) == 1) {
        // An address is matched against the certificate's iPAddress names (RFC 6125 §6.2.1)
        // and never sent as SNI (RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted").
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name) != 1) goto fail;
    } else {
        if (SSL_set_tlsext_host_name(ssl, server_name) != 1) goto fail;
        // "*" only as a whole left-most label (RFC 6125 §6.4.3), checked during the handshake.
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, server_name) != 1) goto fail;
    }
    return ssl;
fail:
    take_errors(failure);
    SSL_free(ssl);
    return NULL;
}

void ctls_connection_free(ctls_connection *connection) { SSL_free(connection); }

int ctls_connect(ctls_connection *connection, ctls_failure *failure) {
    sigpipe_guard guard;
    clear_failure(failure);
    ERR_clear_error();
    sigpipe_block(&guard);
    errno = 0;
    int result = SSL_connect(connection);
    int call_errno = errno;
    sigpipe_restore(&guard);
    return result == 1 ? 1 : classify(connection, result, call_errno, failure);
}

int ctls_read(ctls_connection *connection, void *buffer, int size, ctls_failure *failure) {
    sigpipe_guard guard;
    clear_failure(failure);
    ERR_clear_error();
    // A read may write too: a TLS 1.3 KeyUpdate answer, a TLS 1.2 renegotiation.
    sigpipe_block(&guard);
    errno = 0;
    int result = SSL_read(connection, buffer, size);
    int call_errno = errno;
    sigpipe_restore(&guard);
    return result > 0 ? result : classify(connection, result, call_errno, failure);
}

int ctls_write(ctls_connection *connection, const void *bytes, int size, ctls_failure *failure) {
    sigpipe_guard guard;
    clear_failure(failure);
    ERR_clear_error();
    sigpipe_block(&guard);
    errno = 0;
    int result = SSL_write(connection, bytes, size);
    int call_errno = errno;
    sigpipe_restore(&guard);
    return result > 0 ? result : classify(connection, result, call_errno, failure);
}

void ctls_shutdown(ctls_connection *connection) {
    sigpipe_guard guard;
    ERR_clear_error();
    sigpipe_block(&guard);
    (void)SSL_shutdown(connection);
    sigpipe_restore(&guard);
    ERR_clear_error();
}

int ctls_pending(const ctls_connection *connection) { return SSL_pending(connection); }

int ctls_alpn_selected(const ctls_connection *connection, char *out, size_t size) {
    const unsigned char *name = NULL;
    unsigned int length = 0;
    SSL_get0_alpn_selected(connection, &name, &length);
    if (name == NULL || length == 0 || length >= size) return 0;
    memcpy(out, name, length);
    out[length] = '\0';
    return 1;
}

const char *ctls_version(const ctls_connection *connection) { return SSL_get_version(connection); }
